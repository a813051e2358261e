"""Coroutine system calls: commands, DNS, files, signals and child processes, without blocking."""

from __future__ import annotations

import asyncio
import os
import signal as signals
import socket
from asyncio import events
from typing import Any

from pyswoole.coroutine.api import get_cid

FILE_APPEND = 1 << 10  # Swoole's FILE_APPEND flag for write_file


async def exec(command: str, get_error_stream: bool = False) -> dict[str, Any]:
    """Run a shell command; ``{"code", "signal", "output"}`` once it exits."""
    proc = await asyncio.create_subprocess_shell(
        command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if get_error_stream else None,
    )
    output, _ = await proc.communicate()
    status = proc.returncode or 0
    return {
        "code": status if status >= 0 else 0,
        "signal": -status if status < 0 else 0,
        "output": output.decode(errors="replace"),
    }


async def _wait(awaitable: Any, timeout: float) -> Any:
    return await (asyncio.wait_for(awaitable, timeout) if timeout > 0 else awaitable)


async def gethostbyname(domain: str, family: int = socket.AF_INET, timeout: float = -1) -> str:
    """The first address of ``domain`` (IPv4 unless ``family`` is AF_INET6)."""
    infos = await _wait(
        events.get_running_loop().getaddrinfo(domain, None, family=family, type=socket.SOCK_STREAM), timeout
    )
    return infos[0][4][0]


async def dns_lookup(domain: str, timeout: float = 5, family: int = socket.AF_INET) -> str:
    """Like ``gethostbyname``, with a 5 s default timeout (Swoole's ``dnsLookup``)."""
    return await gethostbyname(domain, family, timeout)


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def _write(path: str, data: bytes, flags: int) -> int:
    with open(path, "ab" if flags & FILE_APPEND else "wb") as file:
        return file.write(data)


async def read_file(path: str) -> bytes:
    """The whole file (read off the loop: disk files are never 'ready' to epoll)."""
    return await events.get_running_loop().run_in_executor(None, _read, path)


async def write_file(path: str, data: bytes | str, flags: int = 0) -> int:
    """Write (or with ``FILE_APPEND`` append) ``data``; the number of bytes written."""
    if isinstance(data, str):
        data = data.encode()
    return await events.get_running_loop().run_in_executor(None, _write, path, data, flags)


#: signal -> cid of the coroutine waiting for it in ``wait_signal`` (a forked child has none).
_signal_waiters: dict[int, int] = {}
os.register_at_fork(after_in_child=_signal_waiters.clear)


def _is_loop_handler(handler: Any, loop: asyncio.AbstractEventLoop) -> bool:
    """``handler`` (from ``signal.getsignal``) is the one an event loop installs for its own
    ``add_signal_handler`` callbacks (uvloop's bound method, asyncio's no-op function)."""
    return (
        getattr(handler, "__self__", None) is loop or getattr(handler, "__name__", "") == "_sighandler_noop"
    )


async def wait_signal(signo: int, timeout: float = -1) -> bool:
    """Wait for the signal ``signo``; False on timeout. The previous handler is put back afterwards.

    One coroutine at a time may wait for a signal, and not for one the loop already handles (a
    server's SIGTERM, say: its handler could not be put back): both raise ``RuntimeError``, as
    Swoole's ``waitSignal`` refuses when a listener exists.
    """
    loop = events.get_running_loop()
    if signo in _signal_waiters:
        raise RuntimeError(
            f"signal {signo} is already awaited by coroutine {_signal_waiters[signo]}; "
            f"coroutine {get_cid()} cannot wait for it too"
        )
    previous = signals.getsignal(signo)
    if _is_loop_handler(previous, loop):
        raise RuntimeError(
            f"signal {signo} already has a listener on the event loop; wait_signal would remove it"
        )
    waiter = loop.create_future()
    loop.add_signal_handler(signo, lambda: waiter.done() or waiter.set_result(True))
    _signal_waiters[signo] = get_cid()
    try:
        return await asyncio.wait_for(waiter, timeout) if timeout > 0 else await waiter
    except TimeoutError:
        return False
    finally:
        del _signal_waiters[signo]
        loop.remove_signal_handler(signo)
        if previous is not None:
            signals.signal(signo, previous)


async def wait_pid(pid: int, timeout: float = -1) -> dict[str, int] | bool:
    """Reap the child ``pid``: ``{"pid", "code", "signal"}``, or False on timeout."""
    loop = events.get_running_loop()
    fd = os.pidfd_open(pid)
    waiter = loop.create_future()
    loop.add_reader(fd, lambda: waiter.done() or waiter.set_result(True))
    try:
        if timeout > 0:
            await asyncio.wait_for(waiter, timeout)
        else:
            await waiter
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return {
        "pid": pid,
        "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else 0,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0,
    }
