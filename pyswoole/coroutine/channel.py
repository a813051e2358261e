"""``Channel``: Swoole's bounded coroutine channel (CSP), on asyncio futures.

A push to a channel with a waiting consumer hands the item straight to that consumer (no buffering,
no re-check), and a pop from a full channel pulls the first waiting producer's item into the
buffer, so every wake-up is final and waiters are served in FIFO order.
"""

from __future__ import annotations

import asyncio
from asyncio import events
from collections import deque
from collections.abc import Awaitable
from typing import Any

_get_running_loop = events._get_running_loop

#: ``errCode`` values (Swoole's SWOOLE_CHANNEL_*).
CHANNEL_OK = 0
CHANNEL_TIMEOUT = -1
CHANNEL_CLOSED = -2


_NO_LOOP: Any = object()


def _answers(channel: Channel) -> tuple[asyncio.Future, asyncio.Future]:
    """Finished futures holding True and False, made once per channel on the running loop
    (shared: awaiting a finished future never suspends)."""
    loop = _get_running_loop()
    if loop is None:
        raise RuntimeError("Channel operations need a running event loop (await them in a coroutine)")
    done_true, done_false = loop.create_future(), loop.create_future()
    done_true.set_result(True)
    done_false.set_result(False)
    channel._done = (done_true, done_false)
    channel._loop = loop
    return channel._done


class Channel:
    """A FIFO of at most ``capacity`` items shared by coroutines.

    ``push`` and ``pop`` return futures to await (``await chan.pop()``; in a plain coroutine
    ``co.await_(chan.pop())``). ``timeout`` arguments are seconds; a negative value waits forever
    and 0 does not wait. ``pop`` gives False on timeout or when the channel is closed, ``push``
    False; ``errCode`` then says which.
    """

    __slots__ = (
        "_closed",
        "_consumers",
        "_done",
        "_items",
        "_loop",
        "_producers",
        "_timers",
        "capacity",
        "errCode",
    )

    def __init__(self, capacity: int = 1) -> None:
        if capacity < 1:
            raise ValueError("Channel capacity must be at least 1")
        self.capacity = capacity
        self.errCode = CHANNEL_OK
        self._items: deque[Any] = deque()
        self._consumers: deque[asyncio.Future] = deque()  # futures of waiting pops
        self._producers: deque[tuple[asyncio.Future, Any]] = deque()  # (future, item) of waiting pushes
        self._timers: dict[asyncio.Future, asyncio.TimerHandle] = {}  # of waiters with a timeout
        self._closed = False
        self._done: tuple[asyncio.Future, asyncio.Future] | None = None
        self._loop: Any = _NO_LOOP  # the loop of _done (never the running loop before the first use)

    def push(self, data: Any, timeout: float = -1) -> Awaitable[bool]:
        """Put ``data`` in the channel, waiting while it is full; False on timeout or close."""
        consumers = self._consumers
        while consumers:  # (a closed channel has none)
            waiter = consumers.popleft()
            try:
                waiter.set_result(data)
            except asyncio.InvalidStateError:  # it timed out or was cancelled: the next one
                continue
            if self._timers:
                self._cancel_timer(waiter)
            self.errCode = 0
            return (self._done or _answers(self))[0]
        answers = self._done or _answers(self)
        if self._closed:
            self.errCode = CHANNEL_CLOSED
            return answers[1]
        if len(self._items) < self.capacity:
            self._items.append(data)
            self.errCode = 0
            return answers[0]
        if timeout == 0:
            self.errCode = CHANNEL_TIMEOUT
            return answers[1]
        loop = self._loop
        if loop is not _get_running_loop():  # used from another loop than before
            _answers(self)
            loop = self._loop
        waiter = loop.create_future()
        if timeout > 0:
            self._timers[waiter] = loop.call_later(timeout, self._expire, waiter)
        self._producers.append((waiter, data))
        return waiter

    def pop(self, timeout: float = -1) -> Awaitable[Any]:
        """Take the oldest item, waiting while the channel is empty; False on timeout or close."""
        items = self._items
        if items:  # (close() empties the buffer)
            data = items.popleft()
            producers = self._producers
            while producers:
                waiter, item = producers.popleft()
                try:
                    waiter.set_result(True)
                except asyncio.InvalidStateError:  # it timed out or was cancelled: the next one
                    continue
                if self._timers:
                    self._cancel_timer(waiter)
                items.append(item)
                break
            self.errCode = 0
            loop = self._loop
            if loop is not _get_running_loop():
                _answers(self)
                loop = self._loop
            ready = loop.create_future()
            ready.set_result(data)
            return ready
        if self._closed:
            self.errCode = CHANNEL_CLOSED
            return (self._done or _answers(self))[1]
        if timeout == 0:
            self.errCode = CHANNEL_TIMEOUT
            return (self._done or _answers(self))[1]
        loop = self._loop
        if loop is not _get_running_loop():  # used from another loop than before
            _answers(self)
            loop = self._loop
        waiter = loop.create_future()
        if timeout > 0:
            self._timers[waiter] = loop.call_later(timeout, self._expire, waiter)
        self._consumers.append(waiter)
        return waiter

    def _cancel_timer(self, waiter: asyncio.Future) -> None:
        timer = self._timers.pop(waiter, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, waiter: asyncio.Future) -> None:
        self._timers.pop(waiter, None)
        if not waiter.done():
            self.errCode = CHANNEL_TIMEOUT
            waiter.set_result(False)

    def close(self) -> bool:
        """Close the channel: wake every waiting producer and consumer (they get False) and drop the
        buffered items (a closed channel's ``pop`` returns False, as Swoole's)."""
        if self._closed:
            return False
        self._closed = True
        self._items.clear()  # nobody may pop them any more
        waiting = [*self._consumers, *(waiter for waiter, _ in self._producers)]
        self._consumers.clear()
        self._producers.clear()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for waiter in waiting:
            if not waiter.done():
                self.errCode = CHANNEL_CLOSED
                waiter.set_result(False)
        return True

    def length(self) -> int:
        return len(self._items)

    def is_empty(self) -> bool:
        return not self._items

    def is_full(self) -> bool:
        return len(self._items) >= self.capacity

    def stats(self) -> dict[str, int]:
        """``consumer_num``/``producer_num``: coroutines waiting to pop/push; ``queue_num``: items."""
        return {
            "consumer_num": sum(1 for waiter in self._consumers if not waiter.done()),
            "producer_num": sum(1 for waiter, _ in self._producers if not waiter.done()),
            "queue_num": len(self._items),
        }

    def __len__(self) -> int:
        return len(self._items)
