"""Start callbacks as coroutines, eagerly.

Swoole runs a new coroutine at once, up to its first suspension. ``spawn`` does the same on asyncio:
the coroutine is stepped in place, and only one that really suspends gets an ``asyncio.Task``, so
a callback that never awaits costs no task at all (the hot path of every server event).
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any

log = logging.getLogger("pyswoole")


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Continue ``coro`` under a Task from the point where it first suspended on ``yielded``."""
    send, throw = coro.send, coro.throw
    while True:
        try:
            value = yield yielded
        except BaseException as exc:
            try:
                yielded = throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            yielded = send(value)
        except StopIteration as stop:
            return stop.value


def _log_task_failure(task: asyncio.Task) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("coroutine %s raised %s: %s", task.get_name(), type(exc).__name__, exc, exc_info=exc)


def start(coro: Coroutine[Any, Any, Any], name: str = "callback") -> asyncio.Task | None:
    """Run ``coro`` until it first suspends; return the Task that carries on, or None if it finished.

    An exception is logged with its traceback and goes no further: one failing coroutine never
    disturbs the others.
    """
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    except Exception as exc:
        log.error("%s raised %s: %s", name, type(exc).__name__, exc, exc_info=True)
        return None
    task = asyncio.get_event_loop().create_task(_resume(coro, yielded), name=name)
    task.add_done_callback(_log_task_failure)
    return task


def spawn(fn: Callable[..., Any], *args: Any, name: str = "callback") -> asyncio.Task | None:
    """Call ``fn(*args)`` as its own coroutine: plain functions run inline, ``async def`` eagerly."""
    try:
        result = fn(*args)
    except Exception as exc:
        log.error("%s raised %s: %s", name, type(exc).__name__, exc, exc_info=True)
        return None
    if type(result) is types.CoroutineType:
        return start(result, name)
    return None
