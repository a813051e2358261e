"""``Process``: a forked child with a pipe to its parent (Swoole's ``Swoole\\Process``).

The pipe is a Unix socket pair. ``PIPE_DGRAM`` (the default) keeps message boundaries: one ``write`` is
one ``read``. It is a ``SOCK_SEQPACKET`` pair rather than Swoole's ``SOCK_DGRAM``: the same boundaries,
plus an end of file (``read`` returns ``b""``) when the other side exits, where a datagram pipe blocks
forever. ``PIPE_STREAM`` is a byte stream; ``redirect_stdin_stdout`` makes the child's fds 0 and 1 the
pipe, so the parent reads whatever the child prints.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import types
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import setproctitle
import uvloop

from pyswoole.process import signals
from pyswoole.process.msgqueue import MessageQueue, script_key

log = logging.getLogger("pyswoole")

_SOCKET_TYPES = {1: socket.SOCK_STREAM, 2: socket.SOCK_SEQPACKET}
_ITIMERS = (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF)
_fallback_queue_key: int | None = None
#: Started processes whose parent end of the pipe is open here; a new child closes those ends.
_with_pipes: weakref.WeakSet[Process] = weakref.WeakSet()


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass


def _exit_code(code: Any) -> int:
    """The process exit status that ``SystemExit(code)`` stands for, as the interpreter computes it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


class _process_or_caller:
    """A method that acts on the ``Process`` it is called on, or on the calling process when called
    on the class (``p.set_priority(...)`` in the parent renices the child, ``Process.set_priority(...)``
    the caller)."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.__doc__ = function.__doc__

    def __get__(self, instance: Process | None, owner: type[Process]) -> Callable[..., Any]:
        return types.MethodType(self.function, owner if instance is None else instance)


def _priority_target(process: Process | type[Process], which: int) -> int:
    """The ``who`` of ``setpriority``/``getpriority``: 0 (the caller) unless a started process is meant."""
    pid = process.pid if isinstance(process, Process) else None
    if pid is None or pid == os.getpid():
        return 0
    if which == os.PRIO_PGRP:
        return os.getpgid(pid)
    if which == os.PRIO_USER:
        return os.stat(f"/proc/{pid}").st_uid
    return pid


class PipeSocket:
    """A process pipe for coroutines: ``await recv()`` and ``await send()`` suspend instead of blocking."""

    __slots__ = ("_sock",)

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        sock.setblocking(False)

    async def recv(self, size: int = 8192) -> bytes:
        """One message (message pipe) or up to ``size`` bytes (stream pipe); ``b""`` at end of file."""
        return await asyncio.get_running_loop().sock_recv(self._sock, size)

    async def send(self, data: bytes | str) -> int:
        if isinstance(data, str):
            data = data.encode()
        await asyncio.get_running_loop().sock_sendall(self._sock, data)
        return len(data)

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()


class Process:
    """A child process running ``target(process)``; ``start()`` forks it and returns its pid."""

    PIPE_NONE = 0
    PIPE_STREAM = 1
    PIPE_DGRAM = 2
    #: ``close(which)``: shut down only the reading or only the writing direction.
    PIPE_READ = 3
    PIPE_WRITE = 4
    #: ``use_queue`` modes: competing readers (each message goes to one of them), optionally non-blocking.
    IPC_QUEUE_COMPETE = 2
    IPC_NOWAIT = 256

    def __init__(
        self,
        target: Callable[[Process], Any],
        redirect_stdin_stdout: bool = False,
        pipe_type: int = PIPE_DGRAM,
        enable_coroutine: bool = False,
    ) -> None:
        if not callable(target):
            raise TypeError(f"Process target must be callable, got {type(target).__name__}")
        if pipe_type not in (self.PIPE_NONE, self.PIPE_STREAM, self.PIPE_DGRAM):
            raise ValueError(f"pipe_type must be PIPE_NONE, PIPE_STREAM or PIPE_DGRAM, got {pipe_type!r}")
        self.target = target
        self.redirect_stdin_stdout = redirect_stdin_stdout
        self.pipe_type = self.PIPE_STREAM if redirect_stdin_stdout else pipe_type
        self.enable_coroutine = enable_coroutine
        #: The child's pid: set by ``start()`` in the parent, and the process's own pid in the child.
        self.pid: int | None = None
        #: The worker id when the process belongs to a ``Pool``; -1 otherwise.
        self.id = -1
        self._pipe: socket.socket | None = None
        self._exported: PipeSocket | None = None
        self._queue: MessageQueue | None = None
        self._queue_block = True

    def __repr__(self) -> str:
        return f"<Process pid={self.pid} id={self.id}>"

    @classmethod
    def attach(cls, pid: int | None, worker_id: int, pipe: socket.socket | None) -> Process:
        """A handle on a process that something else started (a pool worker): its pid, id and pipe."""
        process = cls(_started_elsewhere, pipe_type=cls.PIPE_DGRAM if pipe is not None else cls.PIPE_NONE)
        process.pid = pid
        process.id = worker_id
        process._pipe = pipe
        return process

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self) -> int:
        """Fork; the child runs the target and exits (status 0, ``exit(n)``'s n, or 255 on an exception)."""
        if self.pid is not None:
            raise RuntimeError(f"process already started (pid {self.pid})")
        parent_end = child_end = None
        if self.pipe_type != self.PIPE_NONE:
            parent_end, child_end = socket.socketpair(socket.AF_UNIX, _SOCKET_TYPES[self.pipe_type])
        _flush_stdio()
        pid = os.fork()
        if pid == 0:
            self._run_child(parent_end, child_end)
        self.pid = pid
        if child_end is not None:
            child_end.close()
            _with_pipes.add(self)
        self._pipe = parent_end
        return pid

    def _run_child(self, parent_end: socket.socket | None, child_end: socket.socket | None) -> None:
        code = 255
        try:
            try:
                signals.reset_after_fork()
                for sibling in list(_with_pipes):
                    if sibling is not self:
                        sibling._drop_pipe()  # so that each sibling's child sees end of file when we are gone
                _with_pipes.clear()
                self.pid = os.getpid()
                if parent_end is not None:
                    parent_end.close()
                self._pipe = child_end
                if self.redirect_stdin_stdout and child_end is not None:
                    self._redirect_stdio(child_end)
                self._call_target()
                code = 0
            except SystemExit as exc:
                code = _exit_code(exc.code)
            except KeyboardInterrupt:  # Ctrl+C reaches the whole process group: end quietly, like a shell
                code = 128 + signal.SIGINT
            except BaseException as exc:
                log.error(
                    "process %d: target raised %s: %s", os.getpid(), type(exc).__name__, exc, exc_info=True
                )
        finally:
            _flush_stdio()
            os._exit(code)

    def _drop_pipe(self) -> None:
        for end in (self._pipe, self._exported):
            if end is not None:
                end.close()
        self._pipe = self._exported = None

    @staticmethod
    def _redirect_stdio(pipe: socket.socket) -> None:
        """Make fds 0 and 1, and so ``input()`` and ``print()``, the pipe (line-buffered)."""
        os.dup2(pipe.fileno(), 0)
        os.dup2(pipe.fileno(), 1)
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - lives as long as the process
        sys.stdout = open(1, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115

    def _call_target(self) -> None:
        if self.enable_coroutine or asyncio.iscoroutinefunction(self.target):
            loop = uvloop.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._run_in_loop())
            return
        self.target(self)
        signals.wait_signals()

    async def _run_in_loop(self) -> None:
        result = self.target(self)
        if asyncio.iscoroutine(result):
            await result
        await signals.signals_drained()

    def exit(self, status: int = 0) -> None:
        """End the calling process with ``status`` (in a child: after flushing its output)."""
        raise SystemExit(status)

    def name(self, title: str) -> None:
        """Set the calling process's title, as ``ps`` shows it."""
        setproctitle.setproctitle(title)

    def exec(self, path: str, args: Iterable[str] = ()) -> None:
        """Replace the calling process's program with ``path args...`` (output goes through the pipe when redirected)."""
        _flush_stdio()
        os.execv(path, [path, *args])

    # -- the pipe -----------------------------------------------------------------------------------

    @property
    def pipe(self) -> int:
        """This side's pipe descriptor (-1 without a pipe)."""
        return self._pipe.fileno() if self._pipe is not None else -1

    def _require_pipe(self) -> socket.socket:
        if self._pipe is None:
            raise RuntimeError("this process has no pipe (PIPE_NONE, not started, or closed)")
        return self._pipe

    def write(self, data: bytes | str) -> int:
        """Send ``data`` to the other side; on a message pipe it arrives as one ``read``."""
        pipe = self._require_pipe()
        if isinstance(data, str):
            data = data.encode()
        if self.pipe_type == self.PIPE_STREAM:
            pipe.sendall(data)
        else:
            pipe.send(data)
        return len(data)

    def read(self, size: int = 8192) -> bytes:
        """One message, or up to ``size`` stream bytes; ``b""`` once the other side has closed its end.

        A message longer than ``size`` raises ``ValueError`` (its tail is lost, as with any datagram).
        """
        pipe = self._require_pipe()
        if self.pipe_type == self.PIPE_STREAM:
            return pipe.recv(size)
        data, _, flags, _ = pipe.recvmsg(size)
        if flags & socket.MSG_TRUNC:
            raise ValueError(
                f"a pipe message longer than {size} bytes was truncated; read with a larger size"
            )
        return data

    def close(self, which: int = 0) -> None:
        """Close the pipe (0), or shut down only ``PIPE_READ`` or ``PIPE_WRITE``."""
        pipe = self._require_pipe()
        if which == self.PIPE_READ:
            pipe.shutdown(socket.SHUT_RD)
        elif which == self.PIPE_WRITE:
            pipe.shutdown(socket.SHUT_WR)
        elif which == 0:
            pipe.close()
            self._pipe = None
        else:
            raise ValueError(f"which must be 0, PIPE_READ or PIPE_WRITE, got {which!r}")

    def set_timeout(self, seconds: float | None) -> None:
        """Bound each ``read``/``write`` to ``seconds`` (``TimeoutError`` after); None waits forever."""
        self._require_pipe().settimeout(seconds)

    def set_blocking(self, blocking: bool) -> None:
        """Non-blocking pipe: ``read``/``write`` raise ``BlockingIOError`` instead of waiting."""
        self._require_pipe().setblocking(blocking)

    def export_socket(self) -> PipeSocket:
        """The pipe as a coroutine socket (a duplicate descriptor, so this object's own mode is unchanged)."""
        if self._exported is None:
            self._exported = PipeSocket(self._require_pipe().dup())
        return self._exported

    # -- the message queue --------------------------------------------------------------------------

    def use_queue(self, key: int | None = None, mode: int = IPC_QUEUE_COMPETE, capacity: int = -1) -> None:
        """Use the System V queue ``key`` (default: ``ftok(<script>, 1)``) for ``push``/``pop``.

        Every process that uses the same key shares one queue, and each message is taken once.
        ``mode | IPC_NOWAIT`` makes ``push`` on a full queue and ``pop`` on an empty one return at once.
        """
        if mode & ~self.IPC_NOWAIT != self.IPC_QUEUE_COMPETE:
            raise ValueError(f"mode must be IPC_QUEUE_COMPETE, optionally | IPC_NOWAIT, got {mode!r}")
        if key is None:
            key = script_key(1) or _fallback_key()
        self._queue = MessageQueue(key)
        if capacity > 0:
            self._queue.set_capacity(capacity)
        self._queue_block = not mode & self.IPC_NOWAIT

    def _require_queue(self) -> MessageQueue:
        if self._queue is None:
            raise RuntimeError("call use_queue() first")
        return self._queue

    def push(self, data: bytes | str) -> bool:
        """Put one message on the queue (at most 8192 bytes); False if non-blocking and full."""
        return self._require_queue().push(data, self._queue_block)

    def pop(self) -> bytes | None:
        """Take one message; None if non-blocking and empty, or once the queue has been freed."""
        return self._require_queue().pop(self._queue_block)

    def stat_queue(self) -> dict[str, int]:
        """``{"queue_num", "queue_bytes"}``: messages and bytes waiting in the queue."""
        return self._require_queue().stat()

    def free_queue(self) -> None:
        """Remove the queue from the system (readers blocked in ``pop`` get None)."""
        self._require_queue().free()
        self._queue = None

    # -- process control ----------------------------------------------------------------------------

    @staticmethod
    def wait(blocking: bool = True) -> dict[str, int] | None:
        """Reap one child: ``{"pid", "code", "signal"}``; None when there is none (or none has exited yet)."""
        try:
            pid, status = os.waitpid(-1, 0 if blocking else os.WNOHANG)
        except ChildProcessError:
            return None
        if pid == 0:
            return None
        if os.WIFSIGNALED(status):
            return {"pid": pid, "code": 0, "signal": os.WTERMSIG(status)}
        return {"pid": pid, "code": os.WEXITSTATUS(status), "signal": 0}

    @staticmethod
    def kill(pid: int, sig: int = signal.SIGTERM) -> bool:
        """Send ``sig`` to ``pid``; with 0 only test that it exists. False if it does not (or is not ours)."""
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    @staticmethod
    def signal(signo: int, callback: Callable[[int], Any] | None) -> None:
        """Call ``callback(signo)`` on each ``signo``, inside or outside an event loop; None removes it.

        A child started by ``start()`` keeps running its event loop while it has listeners; a script
        does the same with ``pyswoole.process.wait_signals()``.
        """
        signals.set_listener(signo, callback)

    @staticmethod
    def alarm(usec: int, type: int = 0) -> bool:
        """Raise SIGALRM (type 0), SIGVTALRM (1) or SIGPROF (2) every ``usec`` microseconds; negative: stop."""
        if type not in (0, 1, 2):
            raise ValueError(f"alarm type must be 0, 1 or 2, got {type!r}")
        seconds = usec / 1_000_000 if usec > 0 else 0.0
        signal.setitimer(_ITIMERS[type], seconds, seconds)
        return True

    @staticmethod
    def daemon(nochdir: bool = False, noclose: bool = False) -> None:
        """Detach: fork (the parent exits), start a new session, cd to ``/``, stdio to ``/dev/null``."""
        _flush_stdio()
        if os.fork() > 0:
            os._exit(0)
        os.setsid()
        if not nochdir:
            os.chdir("/")
        if not noclose:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.close(null)

    @staticmethod
    def set_affinity(cpus: Iterable[int]) -> None:
        """Pin the calling process to the given CPU numbers."""
        os.sched_setaffinity(0, cpus)

    @_process_or_caller
    def set_priority(self: Process | type[Process], which: int, priority: int) -> None:
        """``setpriority`` of this process, or of the caller when called on the class.

        ``which`` is ``os.PRIO_PROCESS``, ``os.PRIO_PGRP`` (the process's group) or ``os.PRIO_USER``
        (its owner).
        """
        os.setpriority(which, _priority_target(self, which), priority)

    @_process_or_caller
    def get_priority(self: Process | type[Process], which: int) -> int:
        """``getpriority`` of this process (its group, its owner), or of the caller on the class."""
        return os.getpriority(which, _priority_target(self, which))

    @staticmethod
    def cpu_num() -> int:
        """The number of CPUs (Swoole's ``swoole_cpu_num()``)."""
        return os.cpu_count() or 1


def _started_elsewhere(process: Process) -> None:
    raise RuntimeError("this process was started by its pool; it cannot be started again")


def _fallback_key() -> int:
    """One queue key per program run that has no script file (``python -c``), shared by its children."""
    global _fallback_queue_key
    if _fallback_queue_key is None:
        _fallback_queue_key = MessageQueue().key
    return _fallback_queue_key
