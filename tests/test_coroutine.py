"""The coroutine API: go, cids, context, defer, cancel/join, limits, failures, system calls."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from pyswoole import coroutine as co
from pyswoole.coroutine import runner


@pytest.fixture(autouse=True)
def _no_leaks():
    yield
    assert co.stats()["coroutine_num"] == 0, "a coroutine outlived its test"


def test_go_runs_eagerly_until_first_suspension_then_run_waits_for_all():
    out: list[str] = []

    async def child(n: int, delay: float) -> None:
        out.append(f"child start {n}")
        await co.sleep(delay)
        out.append(f"child end {n}")

    def main() -> None:
        out.append("main start")
        co.go(child, 1, 0.1)
        co.go(child, 2, 0.05)
        out.append("main end")

    co.run(main)
    out.append("end")
    assert out == [
        "main start",
        "child start 1",
        "child start 2",
        "main end",
        "child end 2",
        "child end 1",
        "end",
    ]


def test_cids_are_unique_and_parent_and_context_are_per_coroutine():
    seen: dict[str, object] = {}

    async def child() -> None:
        seen["child"] = co.get_cid()
        seen["pcid"] = co.get_pcid()
        co.get_context()["name"] = "child"
        await co.sleep(0.01)
        seen["child_ctx"] = dict(co.get_context())
        seen["child_exists"] = co.exists(co.get_cid())

    async def main() -> None:
        seen["main"] = co.get_cid()
        co.get_context()["name"] = "main"
        cid = co.go(child)
        seen["returned"] = cid
        seen["listed"] = set(co.list())
        await co.join([cid], 1)
        seen["main_ctx"] = dict(co.get_context())
        seen["gone"] = (co.exists(cid), co.get_context(cid))

    assert co.get_cid() == -1
    co.run(main)
    assert seen["child"] == seen["returned"] != seen["main"]
    assert seen["pcid"] == seen["main"]
    assert seen["listed"] >= {seen["main"], seen["child"]}
    assert seen["child_ctx"] == {"name": "child"}
    assert seen["main_ctx"] == {"name": "main"}
    assert seen["child_exists"] is True
    assert seen["gone"] == (False, None)


def test_stats_count_live_coroutines_and_peak():
    result = {}

    async def sleeper() -> None:
        await co.sleep(0.05)

    async def main() -> None:
        cids = [co.go(sleeper) for _ in range(20)]
        result["num"] = co.stats()["coroutine_num"]
        await co.join(cids)
        result["after"] = co.stats()["coroutine_num"]
        result["peak"] = co.stats()["coroutine_peak_num"]

    co.run(main)
    assert result["num"] == 21
    assert result["after"] == 1
    assert result["peak"] >= 21


def test_defers_run_lifo_on_return_exception_and_cancel(caplog):
    out: list[str] = []

    def plain() -> None:
        co.defer(out.append, "plain-1")
        co.defer(out.append, "plain-2")

    async def raising() -> None:
        co.defer(out.append, "raise-1")
        co.defer(out.append, "raise-2")
        await co.sleep(0)
        raise KeyError("boom")

    async def cancelled() -> None:
        co.defer(out.append, "cancel-1")
        await co.sleep(10)

    async def main() -> None:
        co.go(plain)
        co.go(raising)
        cid = co.go(cancelled)
        await co.sleep(0.01)
        assert co.cancel(cid) is True
        assert await co.join([cid], 1)

    with caplog.at_level(logging.ERROR, "pyswoole"):
        co.run(main)
    assert out == ["plain-2", "plain-1", "raise-2", "raise-1", "cancel-1"]
    assert any("KeyError" in r.getMessage() for r in caplog.records)


def test_defers_of_plain_coroutines_run_lifo_on_raise_and_cancel(caplog):
    """A plain function in a greenlet: the same LIFO defers when it raises or is cancelled."""
    out: list[str] = []

    def raising() -> None:
        co.defer(out.append, "raise-1")
        co.defer(out.append, "raise-2")
        co.await_(co.sleep(0))
        raise KeyError("plain boom")

    def cancelled() -> None:
        co.defer(out.append, "cancel-1")
        co.defer(out.append, "cancel-2")
        try:
            co.await_(co.sleep(10))
        finally:
            out.append("finally")

    async def main() -> None:
        first = co.go(raising)
        second = co.go(cancelled)
        await co.sleep(0.01)
        assert co.cancel(second) is True
        assert await co.join([first, second], 1)

    with caplog.at_level(logging.ERROR, "pyswoole"):
        co.run(main)
    assert out == ["raise-2", "raise-1", "finally", "cancel-2", "cancel-1"]
    assert any("raised KeyError: 'plain boom'" in r.getMessage() for r in caplog.records)


def test_coroutine_py_order_abc_defer():
    """coroutine.php: ``abc~b~a``, defers after the coroutine's last statement."""
    out: list[str] = []

    def main() -> None:
        out.append("a")
        co.defer(out.append, "~a")
        out.append("b")
        co.defer(out.append, "~b")
        co.await_(co.sleep(0.01))
        out.append("c")

    co.run(main)
    assert "".join(out) == "abc~b~a"


def test_an_exception_is_logged_with_its_cid_and_does_not_disturb_others(caplog):
    done: list[int] = []

    async def bad() -> None:
        await co.sleep(0.01)
        raise RuntimeError("bad coroutine")

    def bad_plain() -> None:
        raise ValueError("bad plain")

    async def good() -> None:
        await co.sleep(0.03)
        done.append(co.get_cid())

    cids: dict[str, int] = {}

    def main() -> None:
        cids["bad"] = co.go(bad)
        cids["plain"] = co.go(bad_plain)
        co.go(good)
        try:
            raise OSError("caught inside")
        except OSError:
            done.append(0)

    with caplog.at_level(logging.ERROR, "pyswoole"):
        co.run(main)
    assert len(done) == 2
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"coroutine {cids['bad']} raised RuntimeError" in m for m in messages)
    assert any(f"coroutine {cids['plain']} raised ValueError" in m for m in messages)
    assert all(r.exc_info for r in caplog.records)


def test_max_coroutine_makes_go_fail_clearly():
    errors: list[str] = []

    async def sleeper() -> None:
        await co.sleep(0.02)

    async def main() -> None:
        co.set({"max_coroutine": 5})
        try:
            for _ in range(10):
                co.go(sleeper)
        except co.CoroutineLimitError as exc:
            errors.append(str(exc))
        finally:
            co.set({"max_coroutine": runner.DEFAULT_MAX_COROUTINE})

    co.run(main)
    assert errors and "max_coroutine (5)" in errors[0]
    with pytest.raises(ValueError, match="unknown coroutine settings"):
        co.set({"max_coroutines": 1})


def test_cancel_and_join_timeouts_and_backtrace():
    seen = {}

    async def deep() -> None:
        await co.sleep(5)

    async def waiting() -> None:
        await deep()

    async def main() -> None:
        cid = co.go(waiting)
        await co.sleep(0)
        names = [frame.name for frame in co.get_backtrace(cid)]
        seen["names"] = names
        seen["own"] = [frame.name for frame in co.get_backtrace()][-1]
        seen["join_timeout"] = await co.join([cid], 0.05)
        seen["cancel_self"] = co.cancel(co.get_cid())
        seen["cancel"] = co.cancel(cid)
        seen["join"] = await co.join([cid], 1)
        seen["cancel_gone"] = co.cancel(cid)
        seen["backtrace_gone"] = co.get_backtrace(cid)

    co.run(main)
    assert seen["names"][:2] == ["waiting", "deep"]
    assert seen["own"] == "main"
    assert seen["join_timeout"] is False
    assert seen["cancel_self"] is False
    assert seen["cancel"] is True and seen["join"] is True
    assert seen["cancel_gone"] is False and seen["backtrace_gone"] is None


def test_plain_coroutine_backtrace_shows_its_frames():
    seen = {}

    def blocked() -> None:
        co.await_(co.sleep(5))

    async def main() -> None:
        cid = co.go(blocked)
        seen["names"] = [frame.name for frame in co.get_backtrace(cid)]
        co.cancel(cid)

    co.run(main)
    assert "blocked" in seen["names"]


def test_cancel_before_the_task_first_runs_still_runs_defers():
    out: list[str] = []

    async def victim() -> None:
        co.defer(out.append, "deferred")
        await co.sleep(5)

    async def main() -> None:
        cid = co.go(victim)
        assert co.cancel(cid)
        assert await co.join([cid], 1)

    co.run(main)
    assert out == ["deferred"]


def test_await_outside_a_plain_coroutine_is_a_clear_error():
    with pytest.raises(RuntimeError, match="plain function running as a coroutine"):
        co.await_(asyncio.sleep(0))


def test_asyncio_interop_timeout_and_tasks_inside_coroutines():
    results = []

    async def worker() -> None:
        await co.sleep(0)
        try:
            async with asyncio.timeout(0.02):
                await asyncio.sleep(1)
        except TimeoutError:
            results.append("timeout")
        results.append(await asyncio.gather(asyncio.sleep(0.01, "x"), asyncio.sleep(0, "y")))

    async def main() -> None:
        await co.join([co.go(worker)], 2)

    co.run(main)
    assert results == ["timeout", ["x", "y"]]


def test_spawn_makes_no_task_for_a_coroutine_that_never_suspends():
    calls = []

    async def quick(x: int) -> None:
        calls.append(x)

    def plain(x: int) -> None:
        calls.append(x)

    async def slow() -> None:
        await asyncio.sleep(0.01)
        calls.append("slow")

    async def main() -> None:
        assert co.spawn(quick, 1) is None
        assert co.spawn(plain, 2) is None
        task = co.spawn(slow)
        assert isinstance(task, asyncio.Task)
        await task

    asyncio.run(main())
    assert calls == [1, 2, "slow"]


def test_spawn_logs_failures_of_callbacks(caplog):
    def crash() -> None:
        raise ZeroDivisionError("crashing callback")

    async def crash_later() -> None:
        await asyncio.sleep(0)
        raise LookupError("crashing later")

    async def main() -> None:
        co.spawn(crash)
        task = co.spawn(crash_later)
        await asyncio.wait([task])
        await asyncio.sleep(0)  # the task's done callback logs

    with caplog.at_level(logging.ERROR, "pyswoole"):
        asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert sum("ZeroDivisionError" in m for m in messages) == 1
    assert sum("LookupError" in m for m in messages) == 1


def test_exec_runs_commands_concurrently_and_reports_status():
    results = []

    async def one(cmd: str) -> None:
        results.append(await co.exec(cmd))

    def main() -> None:
        for _ in range(10):
            co.go(one, "sleep 0.5")
        co.go(one, "echo out; exit 3")
        co.go(one, "kill -9 $$")

    started = time.monotonic()
    co.run(main)
    elapsed = time.monotonic() - started
    assert elapsed < 2.5, elapsed  # one after another: 5 s
    assert {"code": 3, "signal": 0, "output": "out\n"} in results
    assert {"code": 0, "signal": 9, "output": ""} in results
    assert sum(r == {"code": 0, "signal": 0, "output": ""} for r in results) == 10


def test_dns_files_signals_and_child_processes(tmp_path):
    seen = {}
    path = str(tmp_path / "data.txt")

    async def main() -> None:
        seen["host"] = await co.gethostbyname("localhost")
        seen["lookup"] = await co.dns_lookup("127.0.0.1")
        seen["written"] = await co.write_file(path, "hello ")
        await co.write_file(path, b"world", co.FILE_APPEND)
        seen["read"] = await co.read_file(path)
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGUSR1)
        seen["signal"] = await co.wait_signal(signal.SIGUSR1, 2)
        seen["signal_timeout"] = await co.wait_signal(signal.SIGUSR2, 0.05)
        proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(7)"])
        seen["pid"] = await co.wait_pid(proc.pid, 5)
        proc.returncode = 7  # reaped above
        sleeper = subprocess.Popen(["sleep", "5"])
        try:
            seen["pid_timeout"] = await co.wait_pid(sleeper.pid, 0.05)
        finally:
            sleeper.kill()
            sleeper.wait()

    co.run(main)
    assert seen["host"] == "127.0.0.1"
    assert seen["lookup"] == "127.0.0.1"
    assert seen["written"] == 6
    assert seen["read"] == b"hello world"
    assert seen["signal"] is True and seen["signal_timeout"] is False
    assert seen["pid"]["code"] == 7 and seen["pid"]["signal"] == 0
    assert seen["pid_timeout"] is False


class _HandMadeAwaitable:
    """Waits on a future through a Python generator (not asyncio's C future iterator)."""

    def __init__(self, fut: asyncio.Future) -> None:
        self.fut = fut

    def __await__(self):
        if not self.fut.done():
            self.fut._asyncio_future_blocking = True
            yield self.fut
        return self.fut.result()


def test_coroutines_awaiting_other_awaitables_still_resume_cancel_and_defer():
    out: list[object] = []

    async def waiter(fut: asyncio.Future) -> None:
        co.defer(out.append, "deferred")
        out.append(await _HandMadeAwaitable(fut))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        cid = co.go(waiter, fut)
        loop.call_later(0.01, fut.set_result, "resumed")
        assert await co.join([cid], 1)
        early = co.go(waiter, loop.create_future())
        assert co.cancel(early)
        assert await co.join([early], 1)

    co.run(main)
    assert out == ["resumed", "deferred", "deferred"]


def test_a_failing_defer_is_logged_and_the_others_still_run(caplog):
    out: list[str] = []

    def explode() -> None:
        raise RuntimeError("defer failed")

    async def work() -> None:
        co.defer(out.append, "first registered, last run")
        co.defer(explode)
        co.defer(out.append, "last registered, first run")
        await co.sleep(0)

    with caplog.at_level(logging.ERROR, "pyswoole"):
        co.run(work)
    assert out == ["last registered, first run", "first registered, last run"]
    assert any(
        "defer in coroutine" in r.getMessage() and "defer failed" in r.getMessage() for r in caplog.records
    )
    with pytest.raises(RuntimeError, match="inside a coroutine"):
        co.defer(print)


def test_wait_signal_refuses_a_second_listener():
    """One coroutine per signal, and never a signal the loop already handles (as Swoole)."""
    seen: dict[str, object] = {}

    async def first() -> None:
        seen["first"] = await co.wait_signal(signal.SIGUSR1, 2)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        waiting = co.go(first)
        try:
            await co.wait_signal(signal.SIGUSR1, 1)
        except RuntimeError as exc:
            seen["second"] = str(exc)
        os.kill(os.getpid(), signal.SIGUSR1)
        await co.join([waiting], 2)
        loop.add_signal_handler(signal.SIGUSR2, seen.setdefault, "loop", True)
        try:
            await co.wait_signal(signal.SIGUSR2, 1)
        except RuntimeError as exc:
            seen["loop_error"] = str(exc)
        os.kill(os.getpid(), signal.SIGUSR2)  # the loop's own handler is still there
        await co.sleep(0.05)
        loop.remove_signal_handler(signal.SIGUSR2)
        seen["waiting"] = waiting

    co.run(main)
    assert seen["first"] is True
    assert seen["second"].startswith(
        f"signal {signal.SIGUSR1} is already awaited by coroutine {seen['waiting']}"
    )
    assert "already has a listener on the event loop" in seen["loop_error"]
    assert seen["loop"] is True
