"""Channel, WaitGroup, Barrier, batch, parallel and map."""

from __future__ import annotations

import time

import pytest

from pyswoole import coroutine as co


def test_channel_is_fifo_bounded_and_reports_state():
    seen = {}

    async def main() -> None:
        chan = co.Channel(2)
        assert chan.capacity == 2 and chan.is_empty()
        assert await chan.push("a") and await chan.push("b")
        seen["full"] = (chan.is_full(), chan.length(), len(chan))
        seen["push_timeout"] = (await chan.push("c", 0.02), chan.errCode)
        seen["items"] = [await chan.pop(), await chan.pop()]
        seen["ok"] = chan.errCode
        seen["pop_timeout"] = (await chan.pop(0.02), chan.errCode)
        seen["pop_nowait"] = (await chan.pop(0), chan.errCode)
        seen["stats"] = chan.stats()

    co.run(main)
    assert seen["full"] == (True, 2, 2)
    assert seen["push_timeout"] == (False, co.CHANNEL_TIMEOUT)
    assert seen["items"] == ["a", "b"] and seen["ok"] == co.CHANNEL_OK == 0
    assert (co.CHANNEL_TIMEOUT, co.CHANNEL_CLOSED) == (-1, -2)  # Swoole's SWOOLE_CHANNEL_* values
    assert seen["pop_timeout"] == (False, co.CHANNEL_TIMEOUT)
    assert seen["pop_nowait"] == (False, co.CHANNEL_TIMEOUT)
    assert seen["stats"] == {"consumer_num": 0, "producer_num": 0, "queue_num": 0}
    with pytest.raises(ValueError):
        co.Channel(0)


def test_channel_wakes_waiters_in_fifo_order():
    got: list[tuple[int, object]] = []
    pushed: list[int] = []

    async def consumer(chan: co.Channel, n: int) -> None:
        got.append((n, await chan.pop()))

    async def producer(chan: co.Channel, n: int) -> None:
        await chan.push(n)
        pushed.append(n)

    async def main() -> None:
        chan = co.Channel(1)
        for n in range(5):
            co.go(consumer, chan, n)
        assert chan.stats()["consumer_num"] == 5
        for n in range(5):
            await chan.push(f"item{n}")
        await co.sleep(0.01)
        full = co.Channel(1)
        await full.push("first")
        for n in range(4):
            co.go(producer, full, n)
        assert full.stats() == {"consumer_num": 0, "producer_num": 4, "queue_num": 1}
        order = [await full.pop() for _ in range(5)]
        got.append((-1, order))
        await co.sleep(0.01)

    co.run(main)
    assert got[:5] == [(n, f"item{n}") for n in range(5)]
    assert got[5] == (-1, ["first", 0, 1, 2, 3])
    assert pushed == [0, 1, 2, 3]


def test_close_wakes_every_waiter_with_closed():
    results: list[tuple[str, object, int]] = []

    async def popper(chan: co.Channel) -> None:
        results.append(("pop", await chan.pop(), chan.errCode))

    async def pusher(chan: co.Channel) -> None:
        results.append(("push", await chan.push("x"), chan.errCode))

    async def main() -> None:
        empty, full = co.Channel(1), co.Channel(1)
        await full.push("occupied")
        for _ in range(3):
            co.go(popper, empty)
            co.go(pusher, full)
        assert empty.close() and full.close()
        assert not empty.close()
        await co.sleep(0.01)
        results.append(("after", await full.pop(), full.errCode))
        results.append(("after", await full.push(1), full.errCode))

    co.run(main)
    assert results.count(("pop", False, co.CHANNEL_CLOSED)) == 3
    assert results.count(("push", False, co.CHANNEL_CLOSED)) == 3
    assert results[-2:] == [("after", False, co.CHANNEL_CLOSED)] * 2


def test_a_waiter_that_timed_out_is_skipped_by_the_next_push():
    seen = {}

    async def impatient(chan: co.Channel) -> None:
        seen["impatient"] = await chan.pop(0.01)

    async def patient(chan: co.Channel) -> None:
        seen["patient"] = await chan.pop(1)

    async def main() -> None:
        chan = co.Channel()
        co.go(impatient, chan)
        cid = co.go(patient, chan)
        await co.sleep(0.05)
        await chan.push("late")
        await co.join([cid], 1)

    co.run(main)
    assert seen == {"impatient": False, "patient": "late"}


def test_channel_from_plain_coroutines_with_await():
    out: list[int] = []

    def producer(chan: co.Channel) -> None:
        for n in range(3):
            co.await_(chan.push(n))
        chan.close()

    def consumer(chan: co.Channel) -> None:
        while (item := co.await_(chan.pop())) is not False:
            out.append(item)

    def main() -> None:
        chan = co.Channel(1)
        co.go(consumer, chan)
        co.go(producer, chan)

    co.run(main)
    assert out == [0, 1, 2]


def test_waitgroup_waits_for_everyone_and_times_out():
    seen = {}

    def worker(wg: co.WaitGroup, delay: float) -> None:
        co.await_(co.sleep(delay))
        wg.done()

    async def main() -> None:
        wg = co.WaitGroup()
        for delay in (0.01, 0.03, 0.02):
            wg.add()
            co.go(worker, wg, delay)
        seen["count"] = wg.count()
        started = time.monotonic()
        seen["ok"] = await wg.wait(2)
        seen["elapsed"] = time.monotonic() - started
        slow = co.WaitGroup(1)
        seen["timeout"] = await slow.wait(0.02)
        slow.done()
        seen["empty"] = await co.WaitGroup().wait()

    co.run(main)
    assert seen["count"] == 3 and seen["ok"] is True
    assert 0.025 <= seen["elapsed"] < 1.5
    assert seen["timeout"] is False and seen["empty"] is True
    with pytest.raises(ValueError, match="negative"):
        co.WaitGroup().done()


def test_barrier_waits_for_the_coroutines_it_started():
    done: list[int] = []

    async def work(n: int) -> None:
        await co.sleep(0.01 * n)
        done.append(n)

    async def main() -> None:
        barrier = co.Barrier()
        for n in range(3):
            barrier.go(work, n)
        assert await barrier.wait(2)
        done.append(-1)

    co.run(main)
    assert done == [0, 1, 2, -1]


def test_batch_parallel_and_map():
    seen = {}

    async def main() -> None:
        async def slow() -> str:
            await co.sleep(0.3)
            return "slow"

        seen["batch"] = await co.batch(
            {
                "plain": lambda: 1,
                "async": lambda: co.sleep(0.01, "async"),
                "waiting": lambda: co.await_(co.sleep(0.01, 3)),
            }
        )
        started = time.monotonic()
        seen["batch_timeout"] = await co.batch({"fast": lambda: 1, "slow": slow}, 0.05)
        seen["elapsed"] = time.monotonic() - started
        hits: list[int] = []
        seen["parallel"] = await co.parallel(4, lambda: hits.append(co.get_cid()))
        seen["distinct"] = len(set(hits))
        seen["map"] = await co.map(range(5), lambda x: co.await_(co.sleep(0.01 * (5 - x), x * x)))

    co.run(main)
    assert seen["batch"] == {"plain": 1, "async": "async", "waiting": 3}
    assert seen["batch_timeout"] == {"fast": 1, "slow": None}
    assert seen["elapsed"] < 0.25  # the slow one takes 0.3 s
    assert seen["parallel"] is True and seen["distinct"] == 4
    assert seen["map"] == [0, 1, 4, 9, 16]


def test_a_channel_outlives_its_loop():
    chan = co.Channel(1)
    got: list[object] = []

    async def first() -> None:
        await chan.push("from the first loop")

    async def second() -> None:
        got.append(await chan.pop())
        got.append(await chan.pop(0.01))

    co.run(first)
    co.run(second)
    assert got == ["from the first loop", False]
    assert chan.errCode == co.CHANNEL_TIMEOUT


def test_channel_operations_need_a_running_loop():
    with pytest.raises(RuntimeError, match="running event loop"):
        co.Channel().pop()
