"""Start callbacks as coroutines, eagerly, and keep the books on every live coroutine.

Swoole runs a new coroutine at once, up to its first suspension. ``spawn`` and ``go`` do the same
on asyncio: the coroutine is stepped in place, and only one that really suspends gets an
``asyncio.Task`` (which then continues it with ``yield from``, at C speed). A coroutine that never
suspends costs no task and no record: its record (cid, parent, context, defers) is made only when
something asks for it, or when it suspends.

Which coroutine is running: during an eager step the module global ``_current`` says so; inside a
task it is looked up from ``asyncio.current_task()``. Plain (non-async) functions run in greenlets
(see ``bridge``) when given to ``go()``, or to ``spawn()`` once runtime hooks are on.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import traceback
import types
from asyncio import events
from collections.abc import Callable, Generator
from collections.abc import Coroutine as CoroutineABC
from typing import Any

log = logging.getLogger("pyswoole")

CO_COROUTINE = 0x80  # inspect.CO_COROUTINE

#: Default ``max_coroutine`` (Swoole's default since 4.4).
DEFAULT_MAX_COROUTINE = 100_000


class CoroutineLimitError(RuntimeError):
    """``go()`` was called while ``max_coroutine`` coroutines are alive."""


class Coroutine:
    """The record of one coroutine, made lazily (see the module docstring)."""

    __slots__ = ("cid", "context", "coro", "defers", "pcid", "task")

    def __init__(self, cid: int, pcid: int) -> None:
        self.cid = cid
        self.pcid = pcid
        self.task: asyncio.Task | None = None
        self.coro: CoroutineABC | None = None
        self.context: dict | None = None
        self.defers: list[tuple[Callable[..., Any], tuple]] | None = None


class _Pending:
    """Marker in ``_current``: inside an eager step whose record is not made yet."""

    __slots__ = ()


_PENDING: Any = _Pending()
_current: Any = None  # None, _PENDING or a Coroutine: who runs an eager step right now
_pending_parent: Coroutine | None = None  # parent of the _PENDING coroutine (None: look it up)
_pending_cid = 0  # cid already given out for the _PENDING coroutine by go(), else 0
_num = 0
_peak = 0
_max = DEFAULT_MAX_COROUTINE
_cids = itertools.count(1)
_live: dict[int, Coroutine] = {}
_by_task: dict[asyncio.Task, Coroutine] = {}
#: Set by pyswoole.runtime: run plain callbacks given to spawn() in greenlets too.
plain_in_greenlet = False


def _task_record() -> Coroutine | None:
    loop = events._get_running_loop()
    if loop is None:
        return None
    task = asyncio.current_task(loop)
    return None if task is None else _by_task.get(task)


def _materialize() -> Coroutine:
    """Make the record of the coroutine in the current eager step."""
    global _current
    parent = _pending_parent if _pending_parent is not None else _task_record()
    rec = Coroutine(_pending_cid or next(_cids), -1 if parent is None else parent.cid)
    _live[rec.cid] = rec
    _current = rec
    return rec


def current() -> Coroutine | None:
    """The record of the running coroutine, or None outside coroutines."""
    cur = _current
    if cur is _PENDING:
        return _materialize()
    if cur is not None:
        return cur
    return _task_record()


def _finish(rec: Coroutine) -> None:
    """The coroutine has ended (returned, raised or was cancelled): run its defers, forget it."""
    global _num, _current
    if rec.defers:
        saved, _current = _current, rec
        try:
            defers = rec.defers
            while defers:
                fn, args = defers.pop()
                try:
                    result = fn(*args)
                    if type(result) is types.CoroutineType:
                        start(result, "defer")
                except Exception as exc:
                    log.error(
                        "defer in coroutine %d raised %s: %s", rec.cid, type(exc).__name__, exc, exc_info=True
                    )
        finally:
            _current = saved
    _num -= 1
    _live.pop(rec.cid, None)
    if rec.task is not None:
        _by_task.pop(rec.task, None)
    rec.context = None


def _log_failure(rec: Coroutine, exc: BaseException) -> None:
    log.error("coroutine %d raised %s: %s", rec.cid, type(exc).__name__, exc, exc_info=exc)


@types.coroutine
def _resume(rec: Coroutine, coro: CoroutineABC[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Continue ``coro`` under a Task from the point where it first suspended on ``yielded``.

    ``_park`` advances this generator to its first bare ``yield`` before the Task sees it, so an
    exception thrown in before the Task's first step (an early cancel) still lands inside the
    ``try`` and reaches ``coro``, and the coroutine's defers run.
    """
    try:
        error = None
        try:
            yield  # parked
            yield yielded
        except BaseException as exc:
            error = exc
        while error is not None:  # thrown in (cancel) while waiting on the first awaitable
            try:
                yielded = coro.throw(error)
            except StopIteration as stop:
                return stop.value
            error = None
            try:
                yield yielded
            except BaseException as exc:
                error = exc
        return (yield from coro)
    except Exception as exc:
        _log_failure(rec, exc)
        return None
    finally:
        _finish(rec)


def _continue_in_task(
    rec: Coroutine, coro: CoroutineABC[Any, Any, Any], yielded: Any, name: str
) -> asyncio.Task:
    resume = _resume(rec, coro, yielded)
    resume.send(None)  # park it
    task = events.get_running_loop().create_task(resume, name=name)
    rec.task = task
    rec.coro = coro
    _by_task[task] = rec
    return task


def _step(
    coro: CoroutineABC[Any, Any, Any], cid: int, name: str, rec: Coroutine | None = None
) -> asyncio.Task | None:
    """Run ``coro`` as a new coroutine until it first suspends.

    ``cid`` is the cid already given out (0: allocate lazily); ``rec`` an already made record.
    """
    global _current, _pending_parent, _pending_cid, _num, _peak
    prev = _current
    if prev is _PENDING:
        prev = _materialize()
    if rec is None:
        _current = _PENDING
        _pending_parent = prev
        _pending_cid = cid
    else:
        _current = rec
    _num += 1
    if _num > _peak:
        _peak = _num
    try:
        yielded = coro.send(None)
    except StopIteration:
        rec = _current
        _current = prev
        if rec is _PENDING:
            _num -= 1
        else:
            _finish(rec)
        return None
    except BaseException as exc:
        rec = _current if _current is not _PENDING else _materialize()
        _current = prev
        if isinstance(exc, Exception):
            _log_failure(rec, exc)
            _finish(rec)
            return None
        _finish(rec)
        raise
    rec = _current if _current is not _PENDING else _materialize()
    _current = prev
    return _continue_in_task(rec, coro, yielded, name)


def start(coro: CoroutineABC[Any, Any, Any], name: str = "callback") -> asyncio.Task | None:
    """Run ``coro`` until it first suspends; return the Task that carries on, or None if it finished.

    An exception is logged with the coroutine's cid and traceback and goes no further: one failing
    coroutine never disturbs the others.
    """
    return _step(coro, 0, name)


def is_async(fn: Callable[..., Any]) -> bool:
    """True if calling ``fn`` makes a coroutine (fast for functions and bound methods)."""
    code = getattr(fn, "__code__", None)
    if code is not None:
        return bool(code.co_flags & CO_COROUTINE)
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def spawn(fn: Callable[..., Any], *args: Any, name: str = "callback") -> asyncio.Task | None:
    """Call ``fn(*args)`` as its own coroutine (a server event).

    ``async def`` functions are stepped eagerly. Plain functions run inline, or in a greenlet once
    runtime hooks are enabled (so hooked blocking calls in them suspend only this coroutine).
    """
    global _current, _pending_parent, _pending_cid, _num, _peak
    if plain_in_greenlet and not is_async(fn):
        from pyswoole.coroutine.bridge import run_plain

        return _step(run_plain(fn, args), 0, name)
    prev = _current
    if prev is _PENDING:
        prev = _materialize()
    _current = _PENDING
    _pending_parent = prev
    _pending_cid = 0
    _num += 1
    if _num > _peak:
        _peak = _num
    try:
        result = fn(*args)
    except BaseException as exc:
        rec = _current if _current is not _PENDING else _materialize()
        _current = prev
        if isinstance(exc, Exception):
            _log_failure(rec, exc)
            _finish(rec)
            return None
        _finish(rec)
        raise
    if type(result) is types.CoroutineType:
        # Step it as this same coroutine: undo the bookkeeping and let _step redo it.
        rec = _current
        _current = prev
        _num -= 1
        return _step(result, 0, name, None if rec is _PENDING else rec)
    rec = _current
    _current = prev
    if rec is _PENDING:
        _num -= 1
    else:
        _finish(rec)
    return None


def go(fn: Callable[..., Any], *args: Any) -> int:
    """Run ``fn(*args)`` as a new coroutine at once, up to its first suspension; return its cid.

    ``async def`` functions run as asyncio coroutines; plain functions run in a greenlet, where
    hooked blocking calls (see ``pyswoole.runtime``) and ``co.await_`` suspend only this coroutine.
    Raises ``CoroutineLimitError`` when ``max_coroutine`` coroutines are alive.
    """
    if _num >= _max:
        raise CoroutineLimitError(f"max_coroutine ({_max}) reached: cannot create another coroutine")
    cid = next(_cids)
    if is_async(fn):
        coro = fn(*args)
        if type(coro) is not types.CoroutineType:
            raise TypeError(f"{fn!r} did not return a coroutine")
    else:
        from pyswoole.coroutine.bridge import run_plain

        coro = run_plain(fn, args)
    _step(coro, cid, f"co-{cid}")
    return cid


def set_max_coroutine(limit: int) -> None:
    global _max
    if limit < 1:
        raise ValueError("max_coroutine must be at least 1")
    _max = limit


def get_max_coroutine() -> int:
    return _max


def stats() -> dict[str, int]:
    """``coroutine_num`` (alive now) and ``coroutine_peak_num``."""
    return {"coroutine_num": _num, "coroutine_peak_num": _peak}


def live() -> dict[int, Coroutine]:
    """Every live coroutine with a record, the current one included."""
    current()
    return _live


def backtrace(rec: Coroutine) -> traceback.StackSummary:
    """The stack of a live coroutine, outermost frame first."""
    if rec is current():
        return traceback.StackSummary.extract(traceback.walk_stack(None))[::-1][:-2]
    from pyswoole.coroutine.bridge import greenlet_of

    frames = []
    coro = rec.coro
    glet = greenlet_of(coro)
    if glet is not None:  # a plain function: its frames live in the greenlet
        coro = None
        if glet.gr_frame is not None:
            frames = [fl for fl in traceback.walk_stack(glet.gr_frame)][::-1][1:]
    while coro is not None and coro.cr_frame is not None:
        frames.append((coro.cr_frame, coro.cr_frame.f_lineno))
        coro = coro.cr_await if type(coro.cr_await) is types.CoroutineType else None
    return traceback.StackSummary.extract(iter(frames))
