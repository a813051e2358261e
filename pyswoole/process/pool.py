"""``Pool`` and ``Manager``: supervised groups of worker processes (Swoole's ``Process\\Pool`` / ``Manager``).

The launched process becomes the manager. It runs the same :class:`~pyswoole.process.supervisor.Supervisor`
as the server's manager: workers are forked with ids ``0..worker_num-1``, a worker that returns from
``worker_start`` or crashes is replaced with the same id, SIGTERM/SIGINT stop every worker (each runs
``worker_stop``) and ``start()`` returns.

Messages reach workers through the pool's IPC type:

* ``IPC_NONE``: none; ``worker_start`` is the whole worker (also with IPC but no ``message`` callback).
* ``IPC_UNIXSOCK``: one message socket pair per worker id; ``get_process(i).write(data)`` from any
  process of the pool delivers ``data`` to worker ``i``'s ``message`` callback.
* ``IPC_MSGQUEUE``: the System V queue ``msgqueue_key``; any process may push, idle workers compete.
* ``IPC_SOCKET``: ``listen(host, port)``; each connection carries one request framed as a 4-byte
  big-endian length plus body. An idle worker accepts it, ``message`` runs, what it ``write()``s goes
  back in the same framing, then the connection is closed (Swoole's protocol).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import setproctitle
import uvloop

from pyswoole.process import signals
from pyswoole.process.msgqueue import MessageQueue
from pyswoole.process.process import Process, _flush_stdio
from pyswoole.process.supervisor import Supervisor
from pyswoole.protocol.framing import DEFAULT_MAX_LENGTH, FramingError, LengthFramer

log = logging.getLogger("pyswoole")

# IPC types (Swoole's SWOOLE_IPC_*).
IPC_NONE = 0
IPC_UNIXSOCK = 1
IPC_MSGQUEUE = 2
IPC_SOCKET = 3

_GROUP = "worker"
_EVENTS = ("worker_start", "worker_stop", "message")
_HEADER = struct.Struct(">I")


class _WorkerStopped(BaseException):
    """Raised in a worker by SIGTERM: unwinds whatever the worker was doing, then ``worker_stop`` runs."""


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # SIGINT: Ctrl+C reaches every process of the terminal


class _StopRelay:
    """Makes sure a stop signal reaches a worker that is blocked in a system call.

    CPython runs a Python signal handler only between bytecodes. A SIGTERM that lands after the last
    check but before the main thread blocks (in ``msgrcv``, ``accept``, ``recv``) would wait there for
    the next signal. The C-level handler also writes the signal number into a wakeup pipe; this thread
    reads it and, as long as the worker has not reacted, sends the signal to the main thread again
    every 0.1 s, which interrupts the blocking call.
    """

    def __init__(self) -> None:
        self.stopping = False
        self._read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        main = threading.main_thread().ident
        threading.Thread(target=self._run, args=(main,), daemon=True, name="pyswoole stop relay").start()

    def _run(self, main: int) -> None:
        while data := os.read(self._read_fd, 64):
            stop = next((signo for signo in data if signo in _STOP_SIGNALS), None)
            while stop is not None:
                time.sleep(0.1)
                if self.stopping:
                    return
                signal.pthread_kill(main, stop)

    def handler(self, signo: int, frame: Any) -> None:
        """The worker's stop-signal handler: unwind whatever the worker is doing."""
        self.stopping = True
        _ignore_stop_signals()  # a second signal must not interrupt worker_stop
        raise _WorkerStopped


def _ignore_stop_signals() -> None:
    # A Python no-op rather than SIG_IGN: CPython raises "ignored due to race condition" for a signal
    # that arrived but whose handler became SIG_IGN before it ran (SIGINT and SIGTERM often come together).
    for signo in _STOP_SIGNALS:
        signal.signal(signo, _already_stopping)


def _already_stopping(signo: int, frame: Any) -> None:
    """Stop signals that arrive while the worker is already stopping change nothing."""


def _run_callback(
    loop_holder: list[asyncio.AbstractEventLoop], in_loop: bool, fn: Callable, *args: Any
) -> None:
    """Call ``fn(*args)``; in an event loop (created once per worker) when asked to or when it is async."""
    if not in_loop and not asyncio.iscoroutinefunction(fn):
        result = fn(*args)
        if not asyncio.iscoroutine(result):
            return
        result.close()
        raise TypeError(f"{fn!r} returned a coroutine: declare it `async def` or enable coroutines")
    if not loop_holder:
        loop_holder.append(uvloop.new_event_loop())
        asyncio.set_event_loop(loop_holder[0])

    async def call() -> None:
        result = fn(*args)
        if asyncio.iscoroutine(result):
            await result

    loop_holder[0].run_until_complete(call())


class Pool:
    """``worker_num`` supervised workers; ``start()`` blocks in the manager until the pool is shut down."""

    IPC_NONE = IPC_NONE
    IPC_UNIXSOCK = IPC_UNIXSOCK
    IPC_MSGQUEUE = IPC_MSGQUEUE
    IPC_SOCKET = IPC_SOCKET

    #: Seconds a stopping worker has to finish (``worker_stop`` included) before it is killed.
    max_wait_time = 3.0
    #: The largest message accepted (IPC_SOCKET requests, IPC_UNIXSOCK messages), and how long an
    #: IPC_SOCKET client may take to send its request.
    package_max_length = DEFAULT_MAX_LENGTH
    request_timeout = 10.0

    def __init__(
        self,
        worker_num: int,
        ipc_type: int = IPC_NONE,
        msgqueue_key: int | None = None,
        enable_coroutine: bool = False,
    ) -> None:
        if worker_num < 1:
            raise ValueError(f"worker_num must be at least 1, got {worker_num}")
        if ipc_type not in (IPC_NONE, IPC_UNIXSOCK, IPC_MSGQUEUE, IPC_SOCKET):
            raise ValueError(f"unknown ipc_type {ipc_type!r}")
        self.worker_num = worker_num
        self.ipc_type = ipc_type
        self.msgqueue_key = msgqueue_key
        self.enable_coroutine = enable_coroutine
        #: The worker's id inside a worker, -1 in the manager.
        self.worker_id = -1
        self.master_pid = -1
        self._callbacks: dict[str, Callable[..., Any]] = {}
        self._listener: socket.socket | None = None
        self._pipes: list[tuple[socket.socket, socket.socket]] = []
        self._queue: MessageQueue | None = None
        self._supervisor: Supervisor | None = None
        self._loop: list[asyncio.AbstractEventLoop] = []
        self._response: bytearray | None = None

    # -- configuration ------------------------------------------------------------------------------

    def on(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        """Register ``worker_start``/``worker_stop`` ``(pool, worker_id)`` or ``message`` ``(pool, data)``.

        Without ``callback`` it returns a decorator.
        """
        if event not in _EVENTS:
            raise ValueError(f"unknown Pool event {event!r}; expected one of {', '.join(_EVENTS)}")
        if callback is None:
            return lambda fn: self.on(event, fn)
        if not callable(callback):
            raise TypeError(f"callback for {event!r} must be callable, got {type(callback).__name__}")
        self._callbacks[event] = callback
        return callback

    def listen(self, host: str, port: int = 0, backlog: int = 2048) -> bool:
        """IPC_SOCKET: listen on ``host:port`` (``unix:/path`` for a Unix socket) before ``start()``."""
        if self.ipc_type != IPC_SOCKET:
            raise RuntimeError("listen() needs ipc_type=IPC_SOCKET")
        if host.startswith("unix:"):
            path = host[5:]
            if os.path.exists(path):
                os.unlink(path)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
        else:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
        listener.listen(backlog)
        self._listener = listener
        return True

    @property
    def address(self) -> Any:
        """The address ``listen()`` bound (its port when 0 was asked for)."""
        return self._listener.getsockname() if self._listener is not None else None

    # -- running ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Become the manager: fork the workers and keep them alive until SIGTERM or ``shutdown()``."""
        self._check_callbacks()
        owns_queue = False
        if self.ipc_type == IPC_UNIXSOCK:
            self._pipes = [
                socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(self.worker_num)
            ]
        elif self.ipc_type == IPC_MSGQUEUE:
            owns_queue = self.msgqueue_key is None
            self._queue = MessageQueue(self.msgqueue_key)
            self.msgqueue_key = self._queue.key
        self.master_pid = os.getpid()
        self._supervisor = Supervisor(stop_timeout=self.max_wait_time)
        self._supervisor.add_group(_GROUP, self.worker_num, self._worker_main)
        try:
            self._supervisor.run()
        finally:
            for pair in self._pipes:
                for end in pair:
                    end.close()
            self._pipes = []
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            if owns_queue and self._queue is not None:
                self._queue.free()

    def _check_callbacks(self) -> None:
        if not {"worker_start", "message"} & self._callbacks.keys():
            raise ValueError("a Pool needs a worker_start or a message callback")
        if self.ipc_type == IPC_SOCKET:
            if "message" not in self._callbacks:
                raise ValueError("a Pool with IPC_SOCKET needs a message callback")
            if self._listener is None:
                raise ValueError("call listen() before start() with IPC_SOCKET")

    def shutdown(self) -> None:
        """Stop the whole pool, from the manager or from any worker."""
        os.kill(self.master_pid, signal.SIGTERM)

    def get_process(self, worker_id: int | None = None) -> Process:
        """A handle on worker ``worker_id`` (default: the calling worker) to ``write()`` to or signal.

        The pid is known in the manager and for the calling worker itself; elsewhere it is None.
        A worker ``read()``s its own messages from its own handle (when it has no ``message`` callback).
        """
        if worker_id is None:
            worker_id = self.worker_id
        if not 0 <= worker_id < self.worker_num:
            raise ValueError(f"no worker {worker_id} in a pool of {self.worker_num}")
        pid = None
        if worker_id == self.worker_id:
            pid = os.getpid()
        elif self.worker_id == -1 and self._supervisor is not None:
            pid = self._supervisor.pid_of(_GROUP, worker_id)
        pipe = None
        if self._pipes:
            parent_end, child_end = self._pipes[worker_id]
            pipe = child_end if worker_id == self.worker_id else parent_end
        return Process.attach(pid, worker_id, pipe)

    def write(self, data: bytes | str) -> bool:
        """IPC_SOCKET, inside ``message``: add ``data`` to the reply sent when the callback returns."""
        if self._response is None:
            raise RuntimeError("write() answers an IPC_SOCKET request, from inside the message callback")
        self._response += data.encode() if isinstance(data, str) else data
        return True

    # -- inside a worker ----------------------------------------------------------------------------

    def _worker_main(self, worker_id: int) -> int:
        signals.reset_after_fork()
        self.worker_id = worker_id
        relay = _StopRelay()
        for signo in _STOP_SIGNALS:
            signal.signal(signo, relay.handler)
        started = False  # worker_stop pairs with a worker that began: one stopped before runs neither
        try:
            if "worker_start" in self._callbacks:
                started = True
                self._invoke("worker_start", worker_id)
            if self.ipc_type != IPC_NONE and "message" in self._callbacks:
                started = True
                return self._serve_messages()
        except _WorkerStopped:
            pass
        finally:
            _ignore_stop_signals()
            try:
                if started and "worker_stop" in self._callbacks:
                    self._invoke("worker_stop", worker_id)
            finally:
                _flush_stdio()
        return 0

    def _invoke(self, event: str, *args: Any) -> None:
        _run_callback(self._loop, self.enable_coroutine, self._callbacks[event], self, *args)

    def _serve_messages(self) -> int:
        if self.ipc_type == IPC_UNIXSOCK:
            inbox = self.get_process()
            while True:
                try:
                    message = inbox.read(self.package_max_length)
                except ValueError as exc:
                    log.warning("pool worker %d: %s", self.worker_id, exc)
                    continue
                self._invoke("message", message)
        if self.ipc_type == IPC_MSGQUEUE:
            assert self._queue is not None
            while (data := self._queue.pop()) is not None:
                self._invoke("message", data)
            log.error("pool worker %d: message queue %#x was removed", self.worker_id, self.msgqueue_key)
            return 1
        assert self._listener is not None
        while True:
            connection, _ = self._listener.accept()
            with connection:
                self._answer(connection)

    def _answer(self, connection: socket.socket) -> None:
        """Read one framed request, run ``message``, send the framed reply; bad requests are logged."""
        connection.settimeout(self.request_timeout)
        framer = LengthFramer("N", 0, 4, max_length=self.package_max_length)
        try:
            packets: list[bytes] = []
            while not packets:
                chunk = connection.recv(65536)
                if not chunk:
                    if framer.buffered:
                        log.warning(
                            "pool worker %d: client closed in the middle of a request", self.worker_id
                        )
                    return
                packets = framer.feed(chunk)
        except FramingError as exc:
            log.warning("pool worker %d: bad request: %s", self.worker_id, exc)
            return
        except OSError as exc:  # includes the timeout of a client that never finishes its request
            log.warning("pool worker %d: reading the request failed: %s", self.worker_id, exc)
            return
        self._response = bytearray()
        try:
            self._invoke("message", packets[0][4:])
            if self._response:
                connection.sendall(_HEADER.pack(len(self._response)) + self._response)
        except OSError as exc:
            log.warning("pool worker %d: sending the reply failed: %s", self.worker_id, exc)
        finally:
            self._response = None


@dataclass
class _Entry:
    func: Callable[[Pool, int], Any]
    enable_coroutine: bool
    name: str | None


class Manager:
    """Several process functions, each in its own supervised worker (restarted whenever it exits)."""

    def __init__(self, ipc_type: int = IPC_NONE, msgqueue_key: int | None = None) -> None:
        self.ipc_type = ipc_type
        self.msgqueue_key = msgqueue_key
        self._entries: list[_Entry] = []
        self.pool: Pool | None = None

    def add(
        self, func: Callable[[Pool, int], Any], enable_coroutine: bool = False, name: str | None = None
    ) -> None:
        """Run ``func(pool, worker_id)`` in a worker of its own, titled ``name`` in ``ps`` when given."""
        if not callable(func):
            raise TypeError(f"process function must be callable, got {type(func).__name__}")
        self._entries.append(_Entry(func, enable_coroutine, name))

    def add_batch(
        self,
        count: int,
        func: Callable[[Pool, int], Any],
        enable_coroutine: bool = False,
        name: str | None = None,
    ) -> None:
        """``add`` the same function ``count`` times (titles get ``" #<n>"`` appended)."""
        for index in range(count):
            self.add(func, enable_coroutine, None if name is None else f"{name} #{index}")

    def start(self) -> None:
        """Start every function and supervise them until SIGTERM (blocks)."""
        if not self._entries:
            raise ValueError("add at least one process function before start()")
        self.pool = Pool(len(self._entries), self.ipc_type, self.msgqueue_key)
        self.pool.on("worker_start", self._run_entry)
        self.pool.start()

    def _run_entry(self, pool: Pool, worker_id: int) -> None:
        entry = self._entries[worker_id]
        if entry.name is not None:
            setproctitle.setproctitle(entry.name)
        _run_callback(pool._loop, entry.enable_coroutine, entry.func, pool, worker_id)
