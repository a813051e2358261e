"""Start callbacks as coroutines, eagerly, and keep the books on every live coroutine.

Swoole runs a new coroutine at once, up to its first suspension. ``spawn`` and ``go`` do the same
on asyncio: the coroutine is stepped in place, and only one that really suspends gets a task, a
``CoTask`` (an ``asyncio.Task`` that carries the coroutine's cid, parent, context and defers, and
takes the coroutine over as it is: see ``_reyieldable``). A coroutine that never suspends costs
no task and no record: a ``Coroutine`` record is made only if something asks for it (``get_cid``,
``defer``, ``get_context``, a child coroutine) and is moved into the task if it suspends later.

Which coroutine is running: during an eager step ``_state.current`` says so; inside a
task it is ``asyncio.current_task()``. Plain (non-async) functions run in greenlets (see
``bridge``) when given to ``go()``, or to ``spawn()`` once runtime hooks are on.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import logging
import os
import traceback
import types
from asyncio import events
from collections.abc import Callable, Generator
from collections.abc import Coroutine as CoroutineABC
from typing import Any

from pyswoole.coroutine._step import FINISHED, RunnerState
from pyswoole.coroutine._step import step as _send

log = logging.getLogger("pyswoole")

CO_COROUTINE = 0x80  # inspect.CO_COROUTINE

#: Default ``max_coroutine`` (Swoole's default since 4.4).
DEFAULT_MAX_COROUTINE = 100_000

Defers = list[tuple[Callable[..., Any], tuple]]


class CoroutineLimitError(RuntimeError):
    """``go()`` was called while ``max_coroutine`` coroutines are alive."""


class Coroutine:
    """The record of a coroutine that has not suspended (yet), made on demand."""

    __slots__ = ("cid", "context", "defers", "pcid")
    task: CoTask | None = None
    coro: Any = None

    def __init__(self, cid: int, pcid: int) -> None:
        self.cid = cid
        self.pcid = pcid
        self.context: dict | None = None
        self.defers: Defers | None = None


class CoTask(asyncio.Task):
    """The task of a coroutine that suspended: itself the coroutine's record (made by ``_suspend``)."""

    __slots__ = ("cid", "context", "coro", "defers", "pcid")

    @property
    def task(self) -> CoTask:
        return self


Record = Coroutine | CoTask


class _Pending:
    """Marker in ``_state.current``: inside an eager step whose record is not made yet."""

    __slots__ = ()


_PENDING: Any = _Pending()
#: ``current``: None, _PENDING or a Coroutine, who runs an eager step right now; ``pending_parent``:
#: the parent of the _PENDING coroutine (None: the current task). C fields: the HTTP paths in C
#: read and write them too.
_state = RunnerState()
_pending_cid = 0  # cid given out by go() to the _PENDING coroutine (0 once used, and otherwise)
_num = 0
_peak = 0
_max = DEFAULT_MAX_COROUTINE
_cids = itertools.count(1)
_live: dict[int, Record] = {}
_current_task = asyncio.current_task
_BOOKKEEPING = contextvars.Context()  # where done callbacks run: no context copy per task
_get_running_loop = events._get_running_loop
#: Set by pyswoole.runtime: run plain callbacks given to spawn() in greenlets too.
plain_in_greenlet = False


def _running_task() -> CoTask | None:
    loop = _get_running_loop()
    if loop is None:
        return None
    task = _current_task(loop)
    return task if type(task) is CoTask else None


def _parent_cid(parent: Record | None) -> int:
    if parent is None:
        parent = _running_task()
    return -1 if parent is None else parent.cid


def _materialize() -> Coroutine:
    """Make the record of the coroutine in the current eager step."""
    global _pending_cid, _num, _peak
    rec = Coroutine(_pending_cid or next(_cids), _parent_cid(_state.pending_parent))
    _pending_cid = 0
    _num += 1
    if _num > _peak:
        _peak = _num
    _live[rec.cid] = rec
    _state.current = rec
    return rec


def current() -> Record | None:
    """The record of the running coroutine, or None outside coroutines."""
    cur = _state.current
    if cur is _PENDING:
        return _materialize()
    if cur is not None:
        return cur
    return _running_task()


def _finish(rec: Record) -> None:
    """The coroutine has ended (returned, raised or was cancelled): run its defers, forget it."""
    global _num
    if rec.defers:
        saved, _state.current = _state.current, rec
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
            _state.current = saved
    _num -= 1
    _live.pop(rec.cid, None)


def _log_failure(rec: Record | None, exc: BaseException) -> None:
    cid = -1 if rec is None else rec.cid
    log.error("coroutine %d raised %s: %s", cid, type(exc).__name__, exc, exc_info=exc)


@types.coroutine
def _continue(coro: CoroutineABC[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Await the rest of ``coro``, which first suspended on ``yielded``: its result or exception.

    Whoever steps this generator first advances it to its first bare ``yield`` (parks it), so an
    exception thrown in before the task's first step (an early cancel) reaches ``coro``.
    """
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


@types.coroutine
def _resume(cid: int, coro: CoroutineABC[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Continue ``coro`` under its task from the point where it first suspended on ``yielded``
    (used when the task cannot take ``coro`` over directly, see ``_reyieldable``): its failure
    is logged and its defers run here. The task is found by its cid."""
    try:
        return (yield from _continue(coro, yielded))
    except Exception as exc:
        _log_failure(_live.get(cid), exc)
        return None
    finally:
        task = _live.get(cid)
        if task is not None:
            _finish(task)


def _ended(prev: Any) -> None:
    """The coroutine of the eager step finished without suspending; ``prev`` runs again."""
    global _pending_cid
    rec = _state.current
    _state.current = prev
    _pending_cid = 0
    if rec is not _PENDING:
        _finish(rec)


def _failed(prev: Any, exc: BaseException) -> None:
    """The coroutine of the eager step raised: log it (an Exception) and finish it."""
    global _pending_cid
    rec = _state.current if _state.current is not _PENDING else _materialize()
    _state.current = prev
    _pending_cid = 0
    if isinstance(exc, Exception):
        _log_failure(rec, exc)
    _finish(rec)


def _take_over(
    prev: Any,
    coro: CoroutineABC[Any, Any, Any],
    yielded: Any,
    name: str | None,
    wrap: Callable[..., CoroutineABC[Any, Any, Any]] | None = None,
    wrap_args: tuple = (),
) -> CoTask:
    """The coroutine of the eager step suspended on ``yielded``: a task takes it over and becomes
    its record; ``prev`` runs again. With ``wrap``, the task runs ``wrap(rest, *wrap_args)``,
    where ``rest`` awaits the remainder of ``coro``."""
    global _pending_cid, _peak, _num
    pending = _state.current
    _state.current = prev
    loop = _get_running_loop()
    if loop is None:
        _pending_cid = 0
        coro.close()
        raise RuntimeError("a coroutine can only suspend inside a running event loop")
    if pending is _PENDING:
        cid = _pending_cid or next(_cids)
        parent = _state.pending_parent or _current_task(loop)
        pcid = parent.cid if type(parent) is CoTask or type(parent) is Coroutine else -1
        context = defers = None
        _num += 1
    else:
        cid, pcid, context, defers = pending.cid, pending.pcid, pending.context, pending.defers
    _pending_cid = 0
    if wrap is not None:
        outer = wrap(_continue(coro, yielded), *wrap_args)
        outer.send(None)  # park it (see _continue)
        task = CoTask(outer, loop=loop, name=name)
        task.add_done_callback(_task_done, context=_BOOKKEEPING)
    elif yielded is None or _reyieldable(coro, yielded):
        task = CoTask(coro, loop=loop, name=name)
        task.add_done_callback(_task_done, context=_BOOKKEEPING)
    else:
        resume = _resume(cid, coro, yielded)
        resume.send(None)  # park it
        task = CoTask(resume, loop=loop, name=name)
    task.cid = cid
    task.pcid = pcid
    task.context = context
    task.defers = defers
    task.coro = coro
    _live[cid] = task
    if _num > _peak:
        _peak = _num
    return task


def _step(coro: CoroutineABC[Any, Any, Any], cid: int, name: str | None) -> CoTask | None:
    """Run ``coro`` as a new coroutine until it first suspends; its task, or None if it finished.

    ``cid`` is the cid already given out (0: allocate one if it is ever needed).
    """
    global _pending_cid
    prev = _state.current
    if prev is _PENDING:
        prev = _materialize()
    _state.current = _PENDING
    _state.pending_parent = prev
    _pending_cid = cid
    try:
        yielded = _send(coro)
    except Exception as exc:
        _failed(prev, exc)
        return None
    except BaseException as exc:
        _failed(prev, exc)
        raise
    if yielded is FINISHED:
        _ended(prev)
        return None
    return _take_over(prev, coro, yielded, name)


class _NoLoop:
    def get_debug(self) -> bool:
        return False


#: The type of the iterator an asyncio future gives ``await`` (C ``FutureIter``).
_future_iter = type(asyncio.Future(loop=_NoLoop()).__await__())  # type: ignore[arg-type]


def _reyieldable(coro: Any, yielded: Any) -> bool:
    """Can a task take ``coro`` over as it is? True for a bare ``yield`` (``sleep(0)``) and for an
    ``await`` on an asyncio future: resumed with ``send(None)`` once its blocking flag is cleared,
    the future's C iterator yields the future again, so the task's first step waits on it."""
    if yielded is None:
        return True
    if getattr(yielded, "_asyncio_future_blocking", None) is not True:
        return False
    inner = coro
    while (awaited := getattr(inner, "cr_await", None)) is not None:
        inner = awaited
    if type(inner) is not _future_iter:
        return False
    yielded._asyncio_future_blocking = False
    return True


def _task_done(task: CoTask) -> None:
    """Done callback of a task that took a coroutine over: log its failure, run its defers."""
    global _num
    try:
        exc = task.exception()
    except asyncio.CancelledError:
        exc = None
    if exc is not None:
        _log_failure(task, exc)
    if task.defers:
        _finish(task)
    else:
        _num -= 1
        del _live[task.cid]


def start(coro: CoroutineABC[Any, Any, Any], name: str = "callback") -> asyncio.Task | None:
    """Run ``coro`` until it first suspends; return the Task that carries on, or None if it finished.

    An exception is logged with the coroutine's cid and traceback and disturbs no other coroutine
    (the task ends with it: ``await task`` re-raises it, ``asyncio.wait`` and ``co.join`` do not).
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
    if plain_in_greenlet and not is_async(fn):
        from pyswoole.coroutine.bridge import run_plain

        return _step(run_plain(fn, args), 0, name)
    prev = _state.current
    if prev is _PENDING:
        prev = _materialize()
    _state.current = _PENDING
    _state.pending_parent = prev
    try:
        coro = fn(*args)  # a plain function has run and ended here
        yielded = _send(coro) if type(coro) is types.CoroutineType else FINISHED
    except Exception as exc:
        _failed(prev, exc)
        return None
    except BaseException as exc:
        _failed(prev, exc)
        raise
    if yielded is FINISHED:
        if _state.current is _PENDING:  # (inlined _ended: the hot path of every event)
            _state.current = prev
        else:
            _ended(prev)
        return None
    return _take_over(prev, coro, yielded, name)


def call(
    fn: Callable[..., Any],
    args: tuple,
    wrap: Callable[..., CoroutineABC[Any, Any, Any]],
    wrap_args: tuple = (),
    name: str = "callback",
) -> asyncio.Task | None:
    """Call ``fn(*args)`` as its own coroutine, eagerly (as ``spawn``), for a caller that handles
    the outcome itself: an exception raised before the first suspension propagates to the caller
    (after the coroutine's defers ran); if the coroutine suspends, its task runs
    ``wrap(rest, *wrap_args)``, where awaiting ``rest`` gives the rest of the coroutine's result
    or exception. Return that task, or None if ``fn`` finished at once.
    """
    prev = _state.current
    if prev is _PENDING:
        prev = _materialize()
    _state.current = _PENDING
    _state.pending_parent = prev
    try:
        coro = fn(*args)  # a plain function has run and ended here
        yielded = _send(coro) if type(coro) is types.CoroutineType else FINISHED
    except BaseException:
        _ended(prev)
        raise
    if yielded is FINISHED:
        if _state.current is _PENDING:
            _state.current = prev
        else:
            _ended(prev)
        return None
    return _take_over(prev, coro, yielded, name, wrap, wrap_args)


def go(fn: Callable[..., Any], *args: Any) -> int:
    """Run ``fn(*args)`` as a new coroutine at once, up to its first suspension; return its cid.

    ``async def`` functions run as asyncio coroutines; plain functions run in a greenlet, where
    hooked blocking calls (see ``pyswoole.runtime``) and ``co.await_`` suspend only this coroutine.
    Raises ``CoroutineLimitError`` when ``max_coroutine`` coroutines are alive.
    """
    if _num >= _max:
        raise CoroutineLimitError(f"max_coroutine ({_max}) reached: cannot create another coroutine")
    cid = next(_cids)
    code = getattr(fn, "__code__", None)
    if code.co_flags & CO_COROUTINE if code is not None else is_async(fn):
        coro = fn(*args)
        if type(coro) is not types.CoroutineType:
            raise TypeError(f"{fn!r} did not return a coroutine")
    else:
        from pyswoole.coroutine.bridge import run_plain

        coro = run_plain(fn, args)
    _step(coro, cid, None)
    return cid


def set_max_coroutine(limit: int) -> None:
    global _max
    if limit < 1:
        raise ValueError("max_coroutine must be at least 1")
    _max = limit


def get_max_coroutine() -> int:
    return _max


def stats() -> dict[str, int]:
    """``coroutine_num`` (alive now, the caller included) and ``coroutine_peak_num``.

    A coroutine is counted from its first suspension, or from when something needs its record
    (its cid, a defer, its context, a child): one that runs to its end at once is never seen.
    """
    current()
    return {"coroutine_num": _num, "coroutine_peak_num": _peak}


def live() -> dict[int, Record]:
    """Every live coroutine with a record, the current one included."""
    current()
    return _live


def backtrace(rec: Record) -> traceback.StackSummary:
    """The stack of a live coroutine that is not running, outermost frame first."""
    from pyswoole.coroutine.bridge import greenlet_of

    frames = []
    coro = rec.coro
    glet = greenlet_of(coro)
    if glet is not None:  # a plain function: its frames live in the greenlet
        coro = None
        if glet.gr_frame is not None:
            frames = list(traceback.walk_stack(glet.gr_frame))[::-1][1:]
    while coro is not None and coro.cr_frame is not None:
        frames.append((coro.cr_frame, coro.cr_frame.f_lineno))
        coro = coro.cr_await if type(coro.cr_await) is types.CoroutineType else None
    return traceback.StackSummary.extract(iter(frames))


def _forget_after_fork() -> None:
    """A forked child runs none of its parent's coroutines: forget their records, or ``co.run``
    in the child would wait for coroutines that do not exist there."""
    global _num
    _live.clear()
    _num = 0


os.register_at_fork(after_in_child=_forget_after_fork)
