"""Loading an application file for the command line, and loading it again in each new worker.

``pyswoole start app.py`` executes ``app.py`` in the master to find its ``Server`` (settings, ports,
callbacks). Each worker, when it starts, executes the file again and takes the callbacks from that
fresh copy, so ``pyswoole reload`` brings edited callbacks into service without a restart. What is
shared between processes stays shared: in the fresh copy, every top-level name that held a
``Server``, ``Table``, ``Atomic``, ``AtomicLong`` or ``Lock`` in the master is bound to the master's
object again (those live in memory created before the fork). Settings and ports are the master's:
changing them needs a restart.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

from pyswoole.server.server import Server
from pyswoole.shm import Atomic, AtomicLong, Lock, Table

SHARED_TYPES = (Server, Table, Atomic, AtomicLong, Lock)


class AppError(RuntimeError):
    """The application could not be found or has no (single) server."""


class AppSource:
    """An application given as a file path or a module name, optionally naming its server."""

    def __init__(self, target: str, server_name: str | None = None):
        self.path = self._resolve(target)
        self.server_name = server_name
        self.module: types.ModuleType | None = None

    @staticmethod
    def _resolve(target: str) -> str:
        if target.endswith(".py") or os.sep in target or os.path.exists(target):
            if not os.path.isfile(target):
                raise AppError(f"no such application file: {target}")
            return os.path.abspath(target)
        spec = importlib.util.find_spec(target)
        if spec is None or not spec.origin:
            raise AppError(f"no module named {target!r}")
        return spec.origin

    def execute(self) -> types.ModuleType:
        """Run the file as a fresh module (``__name__`` is not ``"__main__"``: it does not start)."""
        module = types.ModuleType("__pyswoole_app__")
        module.__file__ = self.path
        directory = os.path.dirname(self.path)
        if directory not in sys.path:
            sys.path.insert(0, directory)
        sys.modules[module.__name__] = module
        with open(self.path, "rb") as f:
            code = compile(f.read(), self.path, "exec")
        exec(code, module.__dict__)
        return module

    def find_server(self, module: types.ModuleType) -> Server:
        if self.server_name:
            server = getattr(module, self.server_name, None)
            if not isinstance(server, Server):
                raise AppError(f"{self.path} has no Server named {self.server_name!r}")
            return server
        found = [(name, value) for name, value in vars(module).items() if isinstance(value, Server)]
        if len(found) != 1:
            names = ", ".join(name for name, _ in found) or "none"
            raise AppError(
                f"{self.path} must define exactly one top-level Server (found: {names}); use --server NAME"
            )
        return found[0][1]

    def load(self) -> Server:
        """Load in the master; remember the module so workers can re-bind its shared objects."""
        self.module = self.execute()
        server = self.find_server(self.module)
        server._on_worker_start = self.refresh
        return server

    def refresh(self, server: Server) -> None:
        """In a new worker: execute the file again and serve its (possibly edited) callbacks."""
        assert self.module is not None
        fresh = self.execute()
        source = self.find_server(fresh)  # the fresh Server, holding the edited callbacks
        shared = {name: value for name, value in vars(self.module).items() if isinstance(value, SHARED_TYPES)}
        vars(fresh).update(shared)
        server.callbacks = dict(source.callbacks)
        for port, new_port in zip(server.ports, source.ports, strict=False):
            port.callbacks = dict(new_port.callbacks)
