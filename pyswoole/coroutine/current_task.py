"""``asyncio.current_task()`` during an eager step.

Callbacks and ``go()`` coroutines start eagerly, outside any asyncio Task, until they first
suspend (see ``runner``). Code that asks asyncio for the current task in that first step, such as
``asyncio.timeout()``, ``asyncio.TaskGroup`` or the libraries built on them (redis-py's connection
timeouts, for one), would find none and fail with "Timeout should be used inside a task". With
this module installed, ``asyncio.current_task()`` answers during an eager step with a stand-in for
the task the coroutine gets if it suspends: ``cancel()``, ``cancelling()`` and ``uncancel()`` reach
that task once it exists (a timeout can only fire after a suspension, when it does).
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
from collections.abc import Callable
from typing import Any

from pyswoole.coroutine import runner

_original_current_task = asyncio.tasks.current_task


class EagerTask:
    """Stands for the task of the coroutine running an eager step (identified by its cid)."""

    __slots__ = ("_cancel_message", "_cancelling", "_loop", "cid")

    def __init__(self, cid: int, loop: asyncio.AbstractEventLoop):
        self.cid = cid
        self._loop = loop
        self._cancelling = 0
        self._cancel_message: Any = None

    def _task(self) -> asyncio.Task | None:
        task = runner._live.get(self.cid)
        return task if isinstance(task, asyncio.Task) else None

    def cancel(self, msg: Any = None) -> bool:
        task = self._task()
        if task is not None:
            return task.cancel(msg)
        self._cancelling += 1  # still running synchronously: nothing to interrupt yet
        self._cancel_message = msg
        return True

    def cancelling(self) -> int:
        task = self._task()
        return task.cancelling() if task is not None else self._cancelling

    def uncancel(self) -> int:
        task = self._task()
        if task is not None:
            return task.uncancel()
        self._cancelling = max(0, self._cancelling - 1)
        return self._cancelling

    def done(self) -> bool:
        task = self._task()
        return task.done() if task is not None else False

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def get_name(self) -> str:
        return f"coroutine {self.cid}"

    def __eq__(self, other: object) -> bool:
        task = self._task()
        return other is self or (task is not None and other is task)

    def __hash__(self) -> int:
        return hash(("pyswoole-coroutine", self.cid))


#: Asked first during an eager step (set by ``pyswoole.asgi``): a real Task for the coroutine of
#: the step, which will run the rest of it, or None.
promote: Callable[[], asyncio.Task | None] | None = None


def current_task(loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Task | None:
    """``asyncio.current_task``, which also knows the coroutine of an eager step."""
    if promote is not None and runner._state.current is not None:
        promoted = promote()
        if promoted is not None:
            return promoted
    task = _original_current_task(loop)
    if task is None and runner._state.current is not None:
        record = runner.current()
        if record is not None:
            if isinstance(record, asyncio.Task):
                return record
            return EagerTask(record.cid, loop or asyncio.get_running_loop())  # type: ignore[return-value]
    return task


def install() -> None:
    """Make ``asyncio.current_task`` see eager steps (idempotent)."""
    asyncio.tasks.current_task = current_task
    asyncio.current_task = current_task


install()
