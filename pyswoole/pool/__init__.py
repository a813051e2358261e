"""A bounded pool of connections shared by the coroutines of one process.

``ConnectionPool`` keeps at most ``size`` connections open. A coroutine takes one with
``async with pool.acquire() as conn`` (or ``get``/``put``); when all are in use it waits, first come
first served, up to ``acquire_timeout`` seconds and then gets ``PoolTimeoutError``.

Connections are checked on the way out, never trusted blindly: one idle longer than ``max_idle_time``
is pinged first (and replaced if the ping fails), one older than ``max_lifetime`` is replaced, and one
that was put back as broken is closed and never handed out again.

Each process has its own pool. A connection is a socket with protocol state: two processes writing
to one socket interleave their requests and read each other's replies. So after ``fork`` the child's
copy of a pool forgets the connections it inherited (it neither uses nor closes them: they belong to
the parent) and opens its own. Create pools in each worker (the ``worker_start`` callback), or
create them before the fork with no connections open yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import os
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["ConnectionPool", "Lease", "PoolClosedError", "PoolError", "PoolTimeoutError"]

log = logging.getLogger("pyswoole")

T = TypeVar("T")


class PoolError(Exception):
    """Base class of the pool's own errors."""


class PoolTimeoutError(PoolError, TimeoutError):
    """No connection became free within the acquire timeout: the pool is exhausted."""


class PoolClosedError(PoolError):
    """The pool was closed."""


class Lease(Generic[T]):
    """``async with pool.acquire() as conn``: ``get`` on entry, ``put`` on exit (broken on an exception)."""

    __slots__ = ("conn", "pool", "timeout")

    def __init__(self, pool: ConnectionPool[T], timeout: float | None) -> None:
        self.pool = pool
        self.timeout = timeout

    async def __aenter__(self) -> T:
        conn = self.pool._lend_fresh()
        if conn is None:
            conn = await self.pool.get(self.timeout)
        self.conn = conn
        return conn

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        self.pool.put(self.conn, broken=exc_type is not None)


class _Slot(Generic[T]):
    """A pooled connection and the times that decide whether it may be handed out."""

    __slots__ = ("conn", "expires_at", "released_at")

    def __init__(self, conn: T, now: float, max_lifetime: float | None) -> None:
        self.conn = conn
        self.expires_at = math.inf if max_lifetime is None else now + max_lifetime
        self.released_at = now


async def close_connection(conn: Any) -> None:
    """Close ``conn`` with its ``aclose()`` or ``close()``, awaiting the result when there is one."""
    close = getattr(conn, "aclose", None) or conn.close
    result = close()
    if inspect.isawaitable(result):
        await result


_live_pools: weakref.WeakSet[ConnectionPool[Any]] = weakref.WeakSet()


def _forget_after_fork() -> None:
    for pool in list(_live_pools):
        pool._forget_inherited()


os.register_at_fork(after_in_child=_forget_after_fork)


class ConnectionPool(Generic[T]):
    """Up to ``size`` connections made by ``factory``, lent to one coroutine at a time.

    ``factory``: ``async () -> conn``, opens one connection.
    ``min_idle``: connections kept open while idle (the pool fills up to it and shrinks back to it).
    ``max_idle_time``: seconds; a connection idle longer is pinged before it is handed out, and
    closed by the maintenance pass if the pool holds more than ``min_idle`` idle ones. Without
    ``ping`` such a connection cannot be checked, so it is replaced.
    ``max_lifetime``: seconds; an older connection is replaced (None: no limit).
    ``ping``: ``async (conn) -> None | bool``; raising, returning False or taking longer than
    ``acquire_timeout`` marks the connection broken.
    ``acquire_timeout``: seconds a coroutine waits for a free connection before PoolTimeoutError.
    ``close``: ``(conn) -> None | awaitable``, closes one connection (default: its ``aclose``/``close``).
    ``reusable``: ``(conn) -> bool``, asked when a connection comes back; False closes it (e.g. a
    MySQL connection given back in the middle of a transaction).
    """

    def __init__(
        self,
        factory: Callable[[], Awaitable[T]],
        size: int = 64,
        *,
        min_idle: int = 0,
        max_idle_time: float = 60,
        max_lifetime: float | None = None,
        ping: Callable[[T], Awaitable[Any]] | None = None,
        acquire_timeout: float = 5,
        close: Callable[[T], Any] | None = None,
        reusable: Callable[[T], bool] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if not 0 <= min_idle <= size:
            raise ValueError(f"min_idle must be between 0 and size ({size}), got {min_idle}")
        if max_idle_time <= 0:
            raise ValueError(f"max_idle_time must be > 0, got {max_idle_time}")
        if max_lifetime is not None and max_lifetime <= 0:
            raise ValueError(f"max_lifetime must be > 0 or None, got {max_lifetime}")
        if acquire_timeout < 0:
            raise ValueError(f"acquire_timeout must be >= 0, got {acquire_timeout}")
        self.factory = factory
        self.size = size
        self.min_idle = min_idle
        self.max_idle_time = max_idle_time
        self.max_lifetime = max_lifetime
        self.ping = ping
        self.acquire_timeout = acquire_timeout
        self._close_conn = close or close_connection
        self._reusable = reusable
        self._idle: deque[_Slot[T]] = deque()  # most recently used on the right
        self._in_use: dict[int, _Slot[T]] = {}
        self._waiters: deque[asyncio.Future[_Slot[T] | None]] = deque()
        self._opening = 0
        self._created = 0
        self._closed_count = 0
        self._timeouts = 0
        self._closed = False
        self._maintenance: asyncio.TimerHandle | None = None
        self._filling: asyncio.Task[None] | None = None
        _live_pools.add(self)

    def __repr__(self) -> str:
        return f"<ConnectionPool {self.stats()}>"

    # -- public API -----------------------------------------------------------------------------

    def acquire(self, timeout: float | None = None) -> Lease[T]:
        """Lend a connection for an ``async with`` block (``get`` on entry, ``put`` on exit).

        An exception escaping the block may have left the connection mid-reply or mid-transaction,
        so the connection is then closed instead of reused; catch expected errors inside the block.
        """
        return Lease(self, timeout)

    async def get(self, timeout: float | None = None) -> T:
        """Take a connection, waiting up to ``timeout`` (default ``acquire_timeout``) seconds for one.

        Raises PoolTimeoutError when none became free in time, PoolClosedError after ``close()``,
        and whatever ``factory`` raises when a new connection cannot be opened.
        """
        conn = self._lend_fresh()
        if conn is not None:
            return conn
        if self._closed:
            raise PoolClosedError("connection pool is closed")
        if self._maintenance is None:
            self._maintain()
        deadline = None
        while True:
            idle = self._idle
            while idle:  # the most recently used first
                slot = idle.pop()
                now = time.monotonic()
                if now > slot.expires_at:
                    self._discard(slot, wake=False)  # this getter takes the room it frees
                elif now - slot.released_at <= self.max_idle_time or await self._alive(slot):
                    self._in_use[id(slot.conn)] = slot
                    return slot.conn
            if self._total() < self.size:
                slot = await self._open()
                self._in_use[id(slot.conn)] = slot
                return slot.conn
            if deadline is None:
                wait = self.acquire_timeout if timeout is None else timeout
                deadline = asyncio.get_running_loop().time() + wait
            slot = await self._wait(deadline, wait)
            if slot is not None:
                return slot.conn  # handed over by put(), already counted as lent
            # else room was freed: go round again

    def put(self, conn: T, *, broken: bool = False) -> None:
        """Give back a connection from ``get``; ``broken=True`` closes it instead of keeping it."""
        slot = self._in_use.pop(id(conn), None)
        if slot is None:
            raise PoolError(f"{conn!r} is not a connection lent by this pool")
        now = time.monotonic()
        if broken or self._closed or now > slot.expires_at:
            self._discard(slot)
            return
        if self._reusable is not None and not self._reusable(conn):
            log.warning("%r came back to its pool unfit for reuse; closing it", conn)
            self._discard(slot)
            return
        slot.released_at = now
        if self._waiters:
            self._release(slot)
        else:
            self._idle.append(slot)

    async def fill(self) -> None:
        """Open connections until ``min_idle`` are idle (bounded by ``size``)."""
        while not self._closed and len(self._idle) < self.min_idle and self._total() < self.size:
            slot = await self._open()
            if self._closed:
                self._discard(slot)
                return
            self._release(slot)

    async def close(self) -> None:
        """Close the idle connections now and the lent ones when they come back; refuse new gets."""
        self._closed = True
        if self._maintenance is not None:
            self._maintenance.cancel()
            self._maintenance = None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(PoolClosedError("connection pool is closed"))
        idle, self._idle = self._idle, deque()
        self._closed_count += len(idle)
        await asyncio.gather(*(self._close_slot(slot) for slot in idle))

    def stats(self) -> dict[str, int]:
        """Counters: connections open (``size`` is the limit), lent, idle, coroutines waiting,
        connections created and closed so far, and gets that timed out."""
        return {
            "size": self.size,
            "in_use": len(self._in_use),
            "idle": len(self._idle),
            "waiting": sum(1 for waiter in self._waiters if not waiter.done()),
            "created": self._created,
            "closed": self._closed_count,
            "timeouts": self._timeouts,
        }

    @property
    def closed(self) -> bool:
        return self._closed

    # -- internals ------------------------------------------------------------------------------

    def _total(self) -> int:
        return len(self._idle) + len(self._in_use) + self._opening

    def _lend_fresh(self) -> T | None:
        """The fast path of ``get``: lend the most recently used idle connection if it needs no
        check (neither idle too long nor expired), else None. One clock read, nothing awaited."""
        idle = self._idle
        if idle and self._maintenance is not None:  # None: first get (or closed, then nothing is idle)
            slot = idle[-1]
            now = time.monotonic()
            if now - slot.released_at <= self.max_idle_time and now <= slot.expires_at:
                idle.pop()
                self._in_use[id(slot.conn)] = slot
                return slot.conn
        return None

    async def _alive(self, slot: _Slot[T]) -> bool:
        """Ping a connection that sat idle too long; a failed or missing check discards it."""
        self._opening += 1  # it counts against size while it is checked
        alive = False
        try:
            if self.ping is not None:
                # a hung ping means broken (wait_for, not asyncio.timeout: see _wait)
                alive = (
                    await asyncio.wait_for(self.ping(slot.conn), self.acquire_timeout or None) is not False
                )
        except Exception as exc:
            log.info("pooled connection failed its ping, replacing it: %s: %s", type(exc).__name__, exc)
        finally:
            self._opening -= 1
            if not alive:
                self._discard(slot, wake=False)
        return alive

    async def _open(self) -> _Slot[T]:
        self._opening += 1
        try:
            conn = await self.factory()
        except BaseException:
            self._wake_one()
            raise
        finally:
            self._opening -= 1
        self._created += 1
        return _Slot(conn, time.monotonic(), self.max_lifetime)

    async def _wait(self, deadline: float, wait: float) -> _Slot[T] | None:
        """Queue for a connection handed over by ``put`` (or None: room for a new one).

        The deadline is a loop timer, not ``asyncio.timeout``: callbacks run eagerly, outside any
        Task until they first suspend, and ``asyncio.timeout`` needs a Task."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_Slot[T] | None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_at(deadline, self._expire, waiter, wait)
        try:
            return await waiter
        except BaseException:  # timed out, cancelled, or the pool was closed
            self._pass_on(waiter)
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            raise
        finally:
            timer.cancel()

    def _expire(self, waiter: asyncio.Future[_Slot[T] | None], wait: float) -> None:
        if waiter.done():
            return
        self._timeouts += 1
        waiter.set_exception(
            PoolTimeoutError(
                f"no free connection within {wait:g} s: all {self.size} are in use "
                f"and {self.stats()['waiting']} more coroutines are waiting"
            )
        )

    def _pass_on(self, waiter: asyncio.Future[_Slot[T] | None]) -> None:
        """A waiter gave up: pass on what it was handed, or stop it being handed anything."""
        if not waiter.done():
            waiter.cancel()
            return
        if waiter.cancelled() or waiter.exception() is not None:
            return
        slot = waiter.result()
        if slot is None:
            self._wake_one()
        else:
            del self._in_use[id(slot.conn)]
            self._release(slot)

    def _release(self, slot: _Slot[T]) -> None:
        """Hand a good connection to the first waiter (it counts as lent from now), or keep it idle."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_use[id(slot.conn)] = slot
                waiter.set_result(slot)
                return
        self._idle.append(slot)

    def _wake_one(self) -> None:
        """Tell the first waiter that there is room to open a connection."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _discard(self, slot: _Slot[T], *, wake: bool = True) -> None:
        """Close a connection in the background and (``wake``) let a waiter use the room it frees."""
        self._closed_count += 1
        asyncio.get_running_loop().create_task(self._close_slot(slot))
        if wake:
            self._wake_one()

    async def _close_slot(self, slot: _Slot[T]) -> None:
        try:
            await self._close_conn(slot.conn)
        except Exception as exc:
            log.debug("closing a pooled connection failed: %s: %s", type(exc).__name__, exc)

    def _maintain(self) -> None:
        """Every ``max_idle_time / 2``: close the idle connections above ``min_idle`` that sat idle
        longer than ``max_idle_time`` (and expired ones), and top up to ``min_idle``.

        A loop timer rather than a long-running Task, so that a worker stopping finds no coroutine
        of the pool still running."""
        self._maintenance = None
        if self._closed:
            return
        now = time.monotonic()
        keep: deque[_Slot[T]] = deque()
        surplus = len(self._idle) - self.min_idle
        for slot in self._idle:  # oldest first
            stale = now - slot.released_at > self.max_idle_time
            if now > slot.expires_at or (stale and surplus > 0):
                surplus -= 1
                self._discard(slot)
            else:
                keep.append(slot)
        self._idle = keep
        loop = asyncio.get_running_loop()
        if len(self._idle) < self.min_idle and self._total() < self.size and self._filling is None:
            self._filling = loop.create_task(self._fill_quietly())
        self._maintenance = loop.call_later(max(self.max_idle_time / 2, 0.05), self._maintain)

    async def _fill_quietly(self) -> None:
        try:
            await self.fill()
        except Exception as exc:
            log.warning("connection pool could not open a connection: %s: %s", type(exc).__name__, exc)
        finally:
            self._filling = None

    def _forget_inherited(self) -> None:
        """After fork, in the child: drop the parent's connections without touching them."""
        self._idle.clear()
        self._in_use.clear()
        self._waiters.clear()
        self._opening = self._created = self._closed_count = self._timeouts = 0
        self._maintenance = self._filling = None
