"""Plain functions as coroutines: greenlets bridged to the asyncio loop.

A plain function given to ``go()`` runs in a greenlet. When code in it needs to wait, it calls
``await_(awaitable)``: the greenlet switches to its driver, an ``async`` coroutine that awaits the
awaitable on the loop and switches back with the result (SQLAlchemy's asyncio bridge, in the same
way). Only that coroutine waits; the loop runs the others. Greenlets are pooled, so a plain
coroutine costs two greenlet switches, not a greenlet, when it never waits.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from greenlet import GreenletExit, getcurrent, greenlet

log = logging.getLogger("pyswoole")

T = TypeVar("T")

_POOL_LIMIT = 256


class CoGreenlet(greenlet):
    """A greenlet that runs plain coroutines, one after another."""


class _Done:
    __slots__ = ()


_DONE: Any = _Done()


class _Raised:
    """A BaseException (cancel, exit) that ended the function: the driver re-raises it."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_pool: list[CoGreenlet] = []


def _worker(fn: Callable[..., Any], args: tuple) -> None:
    while True:
        try:
            result = fn(*args)
            if type(result) is types.CoroutineType:
                await_(result)
            reply: Any = _DONE
        except GreenletExit:
            raise
        except Exception as exc:
            from pyswoole.coroutine.runner import _log_failure, current

            _log_failure(current(), exc)  # type: ignore[arg-type]
            reply = _DONE
        except BaseException as exc:
            reply = _Raised(exc)
        fn = args = result = None  # type: ignore[assignment]
        fn, args = getcurrent().parent.switch(reply)


async def run_plain(fn: Callable[..., Any], args: tuple) -> None:
    """Run the plain ``fn(*args)`` in a pooled greenlet, awaiting whatever it hands over."""
    glet = _pool.pop() if _pool else CoGreenlet(_worker)
    glet.parent = getcurrent()
    request = glet.switch(fn, args)
    while request is not _DONE:
        if type(request) is _Raised:
            _release(glet)
            raise request.exc
        try:
            value = await request
        except BaseException as exc:
            glet.parent = getcurrent()
            request = glet.throw(exc)
        else:
            glet.parent = getcurrent()
            request = glet.switch(value)
    _release(glet)


def _release(glet: CoGreenlet) -> None:
    if len(_pool) < _POOL_LIMIT:
        _pool.append(glet)


def in_plain_coroutine() -> bool:
    """True inside a plain function run as a coroutine (where ``await_`` may suspend)."""
    return type(getcurrent()) is CoGreenlet


def await_(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` from plain code in a coroutine, suspending only this coroutine."""
    glet = getcurrent()
    if type(glet) is not CoGreenlet:
        if type(awaitable) is types.CoroutineType:
            awaitable.close()
        raise RuntimeError("await_() needs a plain function running as a coroutine (go(fn))")
    return glet.parent.switch(awaitable)


def greenlet_of(coro: Any) -> greenlet | None:
    """The greenlet running the plain function behind a ``run_plain`` coroutine, if any."""
    if getattr(coro, "cr_code", None) is run_plain.__code__ and coro.cr_frame is not None:
        return coro.cr_frame.f_locals.get("glet")
    return None
