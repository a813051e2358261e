"""``Channel``: Swoole's bounded coroutine channel (CSP), on asyncio futures.

A push to a channel with a waiting consumer hands the item straight to that consumer (no buffering,
no re-check), and a pop from a full channel pulls the first waiting producer's item into the
buffer, so every wake-up is final and waiters are served in FIFO order.
"""

from __future__ import annotations

from asyncio import events
from collections import deque
from typing import Any

#: ``errCode`` values (Swoole's SWOOLE_CHANNEL_*).
CHANNEL_OK = 0
CHANNEL_TIMEOUT = -1
CHANNEL_CLOSED = -2


class _Signal:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_TIMEOUT: Any = _Signal("TIMEOUT")
_CLOSED: Any = _Signal("CLOSED")


def _expire(fut: Any) -> None:
    if not fut.done():
        fut.set_result(_TIMEOUT)


class Channel:
    """A FIFO of at most ``capacity`` items shared by coroutines.

    ``timeout`` arguments are seconds; a negative value waits forever and 0 does not wait.
    ``pop`` returns False on timeout or when the channel is closed; ``errCode`` then says which.
    """

    __slots__ = ("_closed", "_consumers", "_items", "_producers", "capacity", "errCode")

    def __init__(self, capacity: int = 1) -> None:
        if capacity < 1:
            raise ValueError("Channel capacity must be at least 1")
        self.capacity = capacity
        self.errCode = CHANNEL_OK
        self._items: deque[Any] = deque()
        self._consumers: deque[Any] = deque()  # futures of waiting pops
        self._producers: deque[tuple[Any, Any]] = deque()  # (future, item) of waiting pushes
        self._closed = False

    async def push(self, data: Any, timeout: float = -1) -> bool:
        """Put ``data`` in the channel, waiting while it is full; False on timeout or close."""
        if self._closed:
            self.errCode = CHANNEL_CLOSED
            return False
        consumers = self._consumers
        while consumers:
            waiter = consumers.popleft()
            if not waiter.done():
                waiter.set_result(data)
                self.errCode = CHANNEL_OK
                return True
        if len(self._items) < self.capacity:
            self._items.append(data)
            self.errCode = CHANNEL_OK
            return True
        return await self._wait(timeout, data, popping=False)

    async def pop(self, timeout: float = -1) -> Any:
        """Take the oldest item, waiting while the channel is empty; False on timeout or close."""
        if self._closed:
            self.errCode = CHANNEL_CLOSED
            return False
        items = self._items
        if items:
            data = items.popleft()
            producers = self._producers
            while producers:
                waiter, item = producers.popleft()
                if not waiter.done():
                    items.append(item)
                    waiter.set_result(True)
                    break
            self.errCode = CHANNEL_OK
            return data
        return await self._wait(timeout, None, popping=True)

    async def _wait(self, timeout: float, item: Any, *, popping: bool) -> Any:
        if timeout == 0:
            self.errCode = CHANNEL_TIMEOUT
            return False
        loop = events.get_running_loop()
        waiter = loop.create_future()
        if popping:
            self._consumers.append(waiter)
        else:
            self._producers.append((waiter, item))
        timer = loop.call_later(timeout, _expire, waiter) if timeout > 0 else None
        try:
            result = await waiter
        finally:
            if timer is not None:
                timer.cancel()
        if result is _TIMEOUT:
            self.errCode = CHANNEL_TIMEOUT
            return False
        if result is _CLOSED:
            self.errCode = CHANNEL_CLOSED
            return False
        self.errCode = CHANNEL_OK
        return result

    def close(self) -> bool:
        """Close the channel and wake every waiting producer and consumer (they get False)."""
        if self._closed:
            return False
        self._closed = True
        for waiter in self._consumers:
            if not waiter.done():
                waiter.set_result(_CLOSED)
        for waiter, _ in self._producers:
            if not waiter.done():
                waiter.set_result(_CLOSED)
        self._consumers.clear()
        self._producers.clear()
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
