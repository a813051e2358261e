"""The coroutine API around ``runner``: run, cids, context, defer, cancel, join, settings."""

from __future__ import annotations

import asyncio
import builtins
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import uvloop

from pyswoole.coroutine import runner
from pyswoole.coroutine.runner import go

#: ``co.sleep(seconds)``: suspend the current coroutine.
sleep = asyncio.sleep


async def _wait_all() -> None:
    """Wait until no coroutine is alive."""
    while True:
        tasks = [rec.task for rec in runner._live.values() if rec.task is not None and not rec.task.done()]
        if not tasks:
            return
        await asyncio.wait(tasks)


def run(main: Callable[..., Any], *args: Any) -> None:
    """Start a uvloop loop, run ``main(*args)`` as a coroutine and return once every coroutine ended."""

    async def scheduler() -> None:
        go(main, *args)
        await _wait_all()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop_runner:
        loop_runner.run(scheduler())


def get_cid() -> int:
    """The current coroutine's id, or -1 outside coroutines."""
    rec = runner.current()
    return -1 if rec is None else rec.cid


def _record(cid: int | None) -> runner.Coroutine | None:
    return runner.current() if cid is None else runner.live().get(cid)


def get_pcid(cid: int | None = None) -> int:
    """The id of the coroutine that created ``cid`` (default: the current one); -1 if none."""
    rec = _record(cid)
    return -1 if rec is None else rec.pcid


def get_context(cid: int | None = None) -> dict[Any, Any] | None:
    """A dict that lives and dies with the coroutine (None if it does not exist)."""
    rec = _record(cid)
    if rec is None:
        return None
    if rec.context is None:
        rec.context = {}
    return rec.context


def exists(cid: int) -> bool:
    return cid in runner.live()


def list() -> builtins.list[int]:
    """The ids of every live coroutine."""
    return builtins.list(runner.live())


def stats() -> dict[str, int]:
    return runner.stats()


def get_backtrace(cid: int | None = None) -> traceback.StackSummary | None:
    """The stack of a live coroutine (default: the current one), outermost first; None if gone."""
    rec = _record(cid)
    if rec is None:
        return None
    if rec is runner.current():
        return traceback.extract_stack(sys._getframe(1))
    return runner.backtrace(rec)


def defer(fn: Callable[..., Any], *args: Any) -> None:
    """Call ``fn(*args)`` when the current coroutine exits (LIFO; also on exception or cancel)."""
    rec = runner.current()
    if rec is None:
        raise RuntimeError("defer() must be called inside a coroutine")
    if rec.defers is None:
        rec.defers = []
    rec.defers.append((fn, args))


def cancel(cid: int) -> bool:
    """Cancel a suspended coroutine: ``asyncio.CancelledError`` is raised where it waits.

    False if it does not exist, is the caller, or is running right now (not suspended).
    """
    rec = runner.live().get(cid)
    if rec is None or rec.task is None or rec.task.done() or rec is runner.current():
        return False
    return rec.task.cancel()


async def join(cids: Iterable[int], timeout: float = -1) -> bool:
    """Wait until every coroutine in ``cids`` has ended; False on timeout."""
    tasks = []
    me = runner.current()
    for cid in cids:
        rec = runner._live.get(cid)
        if rec is None:
            continue
        if rec is me or rec.task is None:
            raise ValueError(f"coroutine {cid} cannot be joined from coroutine {get_cid()}: it waits for it")
        tasks.append(rec.task)
    if not tasks:
        return True
    _, pending = await asyncio.wait(tasks, timeout=timeout if timeout >= 0 else None)
    return not pending


_SETTINGS = ("max_coroutine", "hook_flags")


def set(options: Mapping[str, Any]) -> None:
    """Coroutine settings: ``max_coroutine``, ``hook_flags`` (as ``runtime.enable_coroutine``)."""
    unknown = [key for key in options if key not in _SETTINGS]
    if unknown:
        raise ValueError(f"unknown coroutine settings {unknown}; known: {_SETTINGS}")
    if "max_coroutine" in options:
        runner.set_max_coroutine(int(options["max_coroutine"]))
    if "hook_flags" in options:
        from pyswoole import runtime

        runtime.enable_coroutine(int(options["hook_flags"]))


def get_options() -> dict[str, Any]:
    from pyswoole import runtime

    return {"max_coroutine": runner.get_max_coroutine(), "hook_flags": runtime.get_hook_flags()}
