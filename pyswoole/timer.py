"""Millisecond timers on the running event loop (Swoole's ``Timer``).

``Timer.tick(ms, cb, *args)`` calls ``cb(timer_id, *args)`` every ``ms`` milliseconds and
``Timer.after(ms, cb, *args)`` calls ``cb(*args)`` once. Callbacks may be coroutines; each call runs
as its own coroutine, and one that raises is logged while a tick keeps ticking. Timers belong to
the process (and loop) that created them; in a server, each worker has its own.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

from pyswoole.coroutine.runner import spawn


class _Entry:
    __slots__ = (
        "args",
        "callback",
        "exec_count",
        "handle",
        "id",
        "interval",
        "next_at",
        "repeat",
        "start_ms",
    )

    def __init__(
        self, timer_id: int, interval: float, callback: Callable[..., Any], args: tuple, repeat: bool
    ):
        self.id = timer_id
        self.interval = interval
        self.callback = callback
        self.args = args
        self.repeat = repeat
        self.exec_count = 0
        self.start_ms = time.monotonic() * 1000
        self.next_at = 0.0
        self.handle: asyncio.TimerHandle | None = None


class Timer:
    """Class-level timer registry of this process (all methods are class methods)."""

    _timers: dict[int, _Entry] = {}  # noqa: RUF012 - per-process registry
    _ids = itertools.count(1)
    _round = 0

    @classmethod
    def _add(cls, ms: int | float, callback: Callable[..., Any], args: tuple, repeat: bool) -> int:
        if not callable(callback):
            raise TypeError("timer callback must be callable")
        if ms <= 0:
            raise ValueError(f"timer interval must be greater than 0 ms, got {ms}")
        loop = asyncio.get_running_loop()
        entry = _Entry(next(cls._ids), ms / 1000.0, callback, args, repeat)
        entry.next_at = loop.time() + entry.interval
        entry.handle = loop.call_at(entry.next_at, cls._fire, entry)
        cls._timers[entry.id] = entry
        return entry.id

    @classmethod
    def _fire(cls, entry: _Entry) -> None:
        cls._round += 1
        entry.exec_count += 1
        if entry.repeat:
            loop = asyncio.get_running_loop()
            entry.next_at += entry.interval
            now = loop.time()
            if entry.next_at < now:  # fell behind (a blocking callback): skip missed beats
                entry.next_at = now + entry.interval
            entry.handle = loop.call_at(entry.next_at, cls._fire, entry)
            spawn(entry.callback, entry.id, *entry.args, name=f"timer {entry.id}")
        else:
            cls._timers.pop(entry.id, None)
            spawn(entry.callback, *entry.args, name=f"timer {entry.id}")

    @classmethod
    def tick(cls, ms: int | float, callback: Callable[..., Any], *args: Any) -> int:
        """Call ``callback(timer_id, *args)`` every ``ms`` milliseconds; returns the timer id."""
        return cls._add(ms, callback, args, True)

    @classmethod
    def after(cls, ms: int | float, callback: Callable[..., Any], *args: Any) -> int:
        """Call ``callback(*args)`` once after ``ms`` milliseconds; returns the timer id."""
        return cls._add(ms, callback, args, False)

    @classmethod
    def clear(cls, timer_id: int) -> bool:
        entry = cls._timers.pop(timer_id, None)
        if entry is None:
            return False
        if entry.handle is not None:
            entry.handle.cancel()
        return True

    @classmethod
    def clear_all(cls) -> bool:
        for timer_id in list(cls._timers):
            cls.clear(timer_id)
        return True

    @classmethod
    def exists(cls, timer_id: int) -> bool:
        return timer_id in cls._timers

    @classmethod
    def info(cls, timer_id: int) -> dict[str, Any] | None:
        entry = cls._timers.get(timer_id)
        if entry is None:
            return None
        loop = asyncio.get_running_loop()
        return {
            "exec_msec": round(max(0.0, entry.next_at - loop.time()) * 1000),
            "exec_count": entry.exec_count,
            "interval": round(entry.interval * 1000) if entry.repeat else 0,
            "round": cls._round,
            "removed": False,
        }

    @classmethod
    def list(cls) -> list[int]:
        return list(cls._timers)

    @classmethod
    def stats(cls) -> dict[str, Any]:
        return {"initialized": True, "num": len(cls._timers), "round": cls._round}

    @classmethod
    async def wait(cls) -> None:
        """Return once no timer is left (a script's event loop lives as long as its timers)."""
        while cls._timers:
            await asyncio.sleep(0.05)

    @classmethod
    def _reset_after_fork(cls) -> None:
        """A forked child starts with no timers (its parent's loop is not its own)."""
        cls._timers = {}
