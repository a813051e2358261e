"""Timer inside any running event loop: ticks, one-shot timers, clearing, info, failures."""

import asyncio
import logging

import uvloop

from pyswoole import Timer


def test_tick_after_clear_info_and_a_raising_tick_keeps_ticking(caplog):
    events: list[tuple] = []

    async def main() -> None:
        def tick(timer_id: int, label: str) -> None:
            events.append(("tick", label))
            if sum(1 for e in events if e[0] == "tick") == 3:
                raise ValueError("tick failed on purpose")

        async def later(*args: str) -> None:
            await asyncio.sleep(0)
            events.append(("after", *args))

        tick_id = Timer.tick(20, tick, "A")
        after_id = Timer.after(30, later, "x", "y")
        doomed = Timer.after(1000, events.append, "never")
        assert set(Timer.list()) >= {tick_id, after_id, doomed}
        info = Timer.info(tick_id)
        assert info["interval"] == 20 and info["exec_count"] == 0 and not info["removed"]
        assert Timer.clear(doomed) and not Timer.exists(doomed) and not Timer.clear(doomed)
        await asyncio.sleep(0.17)
        assert Timer.info(tick_id)["exec_count"] >= 5  # went on after the failure
        assert Timer.stats()["num"] == 1
        Timer.clear_all()
        assert Timer.list() == []
        await Timer.wait()

    with caplog.at_level(logging.ERROR, logger="pyswoole"):
        uvloop.run(main())
    assert ("after", "x", "y") in events and "never" not in events
    assert sum(1 for e in events if e[0] == "tick") >= 5
    assert "tick failed on purpose" in caplog.text


def test_invalid_timers_are_refused():
    async def main() -> None:
        for bad in (0, -5):
            try:
                Timer.after(bad, print)
            except ValueError as exc:
                assert "greater than 0" in str(exc)
            else:
                raise AssertionError("a non-positive interval was accepted")
        try:
            Timer.tick(10, "not callable")  # type: ignore[arg-type]
        except TypeError:
            pass
        else:
            raise AssertionError("a non-callable was accepted")

    asyncio.run(main())
