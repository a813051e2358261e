"""Waiting for groups of coroutines: ``WaitGroup``, ``Barrier``, ``batch``, ``parallel``, ``map``."""

from __future__ import annotations

import builtins
import types
from asyncio import events
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pyswoole.coroutine.bridge import await_
from pyswoole.coroutine.runner import go, is_async


def _wake(fut: Any, value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


class WaitGroup:
    """Go's WaitGroup: ``add`` before starting work, ``done`` when it ends, ``await wait()``."""

    __slots__ = ("_count", "_waiters")

    def __init__(self, delta: int = 0) -> None:
        self._count = 0
        self._waiters: builtins.list[Any] = []
        if delta:
            self.add(delta)

    def add(self, delta: int = 1) -> None:
        count = self._count + delta
        if count < 0:
            raise ValueError("WaitGroup counter went negative")
        self._count = count
        if count == 0:
            self._wake_all()

    def done(self) -> None:
        self.add(-1)

    def count(self) -> int:
        return self._count

    def _wake_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            _wake(waiter, True)

    async def wait(self, timeout: float = -1) -> bool:
        """Wait until the counter is zero; False if ``timeout`` seconds (>= 0) pass first."""
        if self._count == 0:
            return True
        if timeout == 0:
            return False
        loop = events.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(timeout, _wake, waiter, False) if timeout > 0 else None
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()


async def _run_async(
    fn: Callable[..., Any], args: tuple, store: Callable[[Any], None], wg: WaitGroup
) -> None:
    try:
        store(await fn(*args))
    finally:
        wg.done()


def _run_plain(fn: Callable[..., Any], args: tuple, store: Callable[[Any], None], wg: WaitGroup) -> None:
    try:
        result = fn(*args)
        store(await_(result) if type(result) is types.CoroutineType else result)
    finally:
        wg.done()


def _go_counted(wg: WaitGroup, fn: Callable[..., Any], args: tuple, store: Callable[[Any], None]) -> int:
    wg.add()
    try:
        return go(_run_async if is_async(fn) else _run_plain, fn, args, store, wg)
    except BaseException:
        wg.done()
        raise


class Barrier:
    """Start coroutines through the barrier, then ``await wait()`` until all of them have ended.

    Swoole's Barrier counts the references its coroutines hold; here the barrier counts the
    coroutines started with ``barrier.go(fn, *args)``.
    """

    __slots__ = ("_group",)

    def __init__(self) -> None:
        self._group = WaitGroup()

    def go(self, fn: Callable[..., Any], *args: Any) -> int:
        return _go_counted(self._group, fn, args, _discard)

    async def wait(self, timeout: float = -1) -> bool:
        return await self._group.wait(timeout)


def _discard(_: Any) -> None:
    return None


async def batch(tasks: Mapping[Any, Callable[[], Any]], timeout: float = -1) -> dict[Any, Any]:
    """Run every callable concurrently; their results by key (None for any not finished in time)."""
    results: dict[Any, Any] = dict.fromkeys(tasks)
    group = WaitGroup()
    for key, fn in tasks.items():
        _go_counted(group, fn, (), lambda value, key=key: results.__setitem__(key, value))
    await group.wait(timeout)
    return dict(results)  # a snapshot: late finishers do not change it


async def parallel(n: int, fn: Callable[[], Any], timeout: float = -1) -> bool:
    """Run ``fn`` in ``n`` coroutines at once and wait for all of them; False on timeout."""
    group = WaitGroup()
    for _ in range(n):
        _go_counted(group, fn, (), _discard)
    return await group.wait(timeout)


async def map(items: Iterable[Any], fn: Callable[[Any], Any], timeout: float = -1) -> builtins.list[Any]:
    """``[fn(item) for item in items]`` with every call in its own coroutine (None if not in time)."""
    items = builtins.list(items)
    results: builtins.list[Any] = [None] * len(items)
    group = WaitGroup()
    for index, item in enumerate(items):
        _go_counted(group, fn, (item,), lambda value, index=index: results.__setitem__(index, value))
    await group.wait(timeout)
    return builtins.list(results)
