"""Waiting for a descriptor on the loop, with Swoole's rule: one coroutine per socket direction.

Shared by the runtime hooks (through ``await_``) and the coroutine client. A second coroutine that
tries to read (or write) a socket another coroutine is already waiting on gets a ``RuntimeError``
naming both coroutines; closing a socket wakes its waiters with ``OSError(EBADF)``.
"""

from __future__ import annotations

import errno
from asyncio import events
from typing import Any

from pyswoole.coroutine import runner


class _TimedOut:
    __slots__ = ()


_TIMED_OUT: Any = _TimedOut()

#: (fd, writing) -> (cid, future) of the coroutine waiting on it.
_waiting: dict[tuple[int, bool], tuple[int, Any]] = {}


def _ready(fut: Any, value: Any = None) -> None:
    if not fut.done():
        fut.set_result(value)


def claim_error(fd: int, writing: bool) -> RuntimeError | None:
    """The error to raise if another coroutine is already waiting on ``fd`` in this direction."""
    other = _waiting.get((fd, writing))
    if other is None:
        return None
    rec = runner.current()
    me = -1 if rec is None else rec.cid
    action = "writing" if writing else "reading"
    return RuntimeError(
        f"socket fd {fd} is already bound to coroutine {other[0]} for {action}; "
        f"{action} the same socket in coroutine {me} at the same time is not allowed"
    )


async def wait_ready(fd: int, writing: bool, timeout: float | None) -> bool:
    """Suspend the current coroutine until ``fd`` is ready; False after ``timeout`` seconds."""
    error = claim_error(fd, writing)
    if error is not None:
        raise error
    key = (fd, writing)
    rec = runner.current()
    loop = events.get_running_loop()
    fut = loop.create_future()
    if writing:
        loop.add_writer(fd, _ready, fut)
    else:
        loop.add_reader(fd, _ready, fut)
    timer = (
        loop.call_later(timeout, _ready, fut, _TIMED_OUT) if timeout is not None and timeout >= 0 else None
    )
    _waiting[key] = (-1 if rec is None else rec.cid, fut)
    try:
        return await fut is not _TIMED_OUT
    finally:
        if _waiting.get(key, (0, None))[1] is fut:
            del _waiting[key]
            if writing:
                loop.remove_writer(fd)
            else:
                loop.remove_reader(fd)
        if timer is not None:
            timer.cancel()


def wake_closed(fd: int) -> None:
    """``fd`` is about to close: stop watching it and fail the coroutines waiting on it (EBADF)."""
    if not _waiting:
        return
    for writing in (False, True):
        entry = _waiting.pop((fd, writing), None)
        if entry is None:
            continue
        fut = entry[1]
        loop = fut.get_loop()
        if writing:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
        if not fut.done():
            fut.set_exception(OSError(errno.EBADF, "socket closed while a coroutine waited on it"))
