"""Signal listeners that work with and without a running event loop (Swoole's ``Process::signal``).

A listener is installed with :func:`signal.signal`. When the signal arrives while an event loop runs in the
main thread, the callback is queued on that loop (``call_soon_threadsafe`` also wakes a loop blocked in
``epoll``); otherwise it runs at once, between two bytecodes of the main thread, like any Python handler.
This also covers ``SIGCHLD``, which uvloop refuses in ``add_signal_handler``.

Swoole runs its event loop at the end of a script for as long as it holds events. :func:`wait_signals`
is that step for signal listeners: it runs a loop until every listener has been removed, so a parent
that only waits for ``SIGCHLD`` stays up until its handler removes itself.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

import uvloop

from pyswoole.coroutine.runner import spawn

log = logging.getLogger("pyswoole")

_listeners: dict[int, Callable[[int], Any]] = {}
_drain_waiters: list[asyncio.Future[None]] = []
_previous_handlers: dict[int, Any] = {}


def set_listener(signo: int, callback: Callable[[int], Any] | None) -> None:
    """Call ``callback(signo)`` whenever ``signo`` arrives; ``None`` removes the listener.

    Removing the last listener of a signal puts back the handler that was there before.
    """
    if callback is None:
        if _listeners.pop(signo, None) is not None:
            signal.signal(signo, _previous_handlers.pop(signo))
            if not _listeners:
                _wake_drain_waiters()
        return
    if not callable(callback):
        raise TypeError(f"signal callback must be callable or None, got {type(callback).__name__}")
    previous = signal.signal(signo, _on_signal)
    if signo not in _listeners:
        _previous_handlers[signo] = previous if previous is not None else signal.SIG_DFL
    _listeners[signo] = callback


def listening() -> frozenset[int]:
    """The signal numbers that have a listener."""
    return frozenset(_listeners)


def _on_signal(signo: int, _frame: Any) -> None:
    loop = asyncio._get_running_loop()
    if loop is None:
        _call_plain(signo)
    else:
        loop.call_soon_threadsafe(_call_in_loop, signo)


def _call_plain(signo: int) -> None:
    callback = _listeners.get(signo)
    if callback is None:
        return
    try:
        result = callback(signo)
    except Exception as exc:
        log.error("signal %d callback raised %s: %s", signo, type(exc).__name__, exc, exc_info=True)
        return
    if asyncio.iscoroutine(result):
        result.close()
        log.error("signal %d callback is a coroutine but no event loop is running", signo)


def _call_in_loop(signo: int) -> None:
    callback = _listeners.get(signo)
    if callback is not None:
        spawn(callback, signo, name=f"signal {signo} callback")


def _wake_drain_waiters() -> None:
    while _drain_waiters:
        waiter = _drain_waiters.pop()
        waiter.get_loop().call_soon_threadsafe(_finish, waiter)


def _finish(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def signals_drained() -> None:
    """Return once no signal listener is left (the awaitable form of :func:`wait_signals`)."""
    while _listeners:
        waiter = asyncio.get_running_loop().create_future()
        _drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in _drain_waiters:
                _drain_waiters.remove(waiter)


def wait_signals() -> None:
    """Run an event loop for as long as signal listeners remain (Swoole's ``Event::wait()``)."""
    if asyncio._get_running_loop() is not None:
        raise RuntimeError("wait_signals() blocks; inside a running loop use `await signals_drained()`")
    if not _listeners:
        return
    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(signals_drained())
    finally:
        loop.close()


def reset_after_fork() -> None:
    """In a new child: drop the parent's listeners, its wakeup fd and its running loop."""
    for signo in list(_listeners):
        signal.signal(signo, _previous_handlers.pop(signo))
    _listeners.clear()
    _drain_waiters.clear()
    signal.set_wakeup_fd(-1)
    asyncio.events._set_running_loop(None)
    asyncio.set_event_loop(None)
