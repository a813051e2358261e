"""Coroutines (issue 7): Channel vs asyncio.Queue, go() vs create_task, memory, hooked switches.

Every figure is measured in a fresh Python process (``--child``), contenders alternated rep by rep,
in CPU time of that process (``time.process_time``: other load on a shared machine disturbs it less
than wall time):

- ping-pong: round trips per second between two coroutines over two 1-slot channels
  (``Channel(1)``) against the same with ``asyncio.Queue(1)`` on uvloop and on the default loop;
- spawn: coroutines started and finished per second with ``go()`` against
  ``loop.create_task()``, for a body that returns at once and one that suspends once;
- memory: RSS growth and start time for 100,000 coroutines sleeping on a timer;
- switch: one suspension of a plain coroutine through the hooked ``time.sleep(0)`` against
  ``await asyncio.sleep(0)``.

    python3 bench/bench_coroutine.py [--reps 5] [--count 200000] [--sleepers 100000] [--no-write]

Writes bench/results/coroutine.md.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop
from harness import (
    BENCH_DIR,
    SERVER_CPU,
    bench_arguments,
    environment,
    log,
    markdown_table,
    pinned,
    spread,
    write_section,
)

RESULTS = BENCH_DIR / "results" / "coroutine.md"


def rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4


# -- measurements (run in a child process) -------------------------------------------------------


def pingpong_channel(count: int) -> float:
    from pyswoole import coroutine as co

    result = {}

    async def pong(ping_ch: co.Channel, pong_ch: co.Channel) -> None:
        for _ in range(count):
            await pong_ch.push(await ping_ch.pop())

    async def main() -> None:
        ping_ch, pong_ch = co.Channel(1), co.Channel(1)
        co.go(pong, ping_ch, pong_ch)
        started = time.process_time()
        for n in range(count):
            await ping_ch.push(n)
            await pong_ch.pop()
        result["seconds"] = time.process_time() - started

    co.run(main)
    return count / result["seconds"]


def pingpong_queue(count: int, use_uvloop: bool) -> float:
    async def pong(ping_q: asyncio.Queue, pong_q: asyncio.Queue) -> None:
        for _ in range(count):
            await pong_q.put(await ping_q.get())

    async def main() -> float:
        ping_q: asyncio.Queue = asyncio.Queue(1)
        pong_q: asyncio.Queue = asyncio.Queue(1)
        task = asyncio.create_task(pong(ping_q, pong_q))
        started = time.process_time()
        for n in range(count):
            await ping_q.put(n)
            await pong_q.get()
        seconds = time.process_time() - started
        await task
        return seconds

    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop if use_uvloop else None)
    with runner:
        return count / runner.run(main())


def spawn_rate(count: int, kind: str, suspend: bool) -> float:
    from pyswoole import coroutine as co

    result = {}
    state = {"left": count}

    async def body() -> None:
        if suspend:
            await asyncio.sleep(0)
        state["left"] -= 1
        if not state["left"]:
            done.set_result(None)

    def plain() -> None:
        state["left"] -= 1
        if not state["left"]:
            done.set_result(None)

    async def main() -> None:
        global done
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        go, create_task = co.go, loop.create_task
        started = time.process_time()
        if kind == "go":
            for _ in range(count):
                go(body)
        elif kind == "go-plain":
            for _ in range(count):
                go(plain)
        else:
            for _ in range(count):
                create_task(body())
        await done
        result["seconds"] = time.process_time() - started

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        co.set({"max_coroutine": count + 10})
        runner.run(main())
    return count / result["seconds"]


def sleepers(count: int, kind: str) -> dict[str, float]:
    from pyswoole import coroutine as co
    from pyswoole import runtime

    result: dict[str, float] = {}

    async def sleeper() -> None:
        await asyncio.sleep(3600)

    def plain_sleeper() -> None:
        time.sleep(3600)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.05)
        before = rss_kib()
        started = time.process_time()
        if kind == "go":
            for _ in range(count):
                co.go(sleeper)
        elif kind == "go-plain":
            for _ in range(count):
                co.go(plain_sleeper)
        else:
            tasks = [loop.create_task(sleeper()) for _ in range(count)]  # go() keeps its own references
            assert len(tasks) == count
        await asyncio.sleep(0)
        result["start_s"] = time.process_time() - started
        await asyncio.sleep(0.2)
        result["mib"] = (rss_kib() - before) / 1024
        result["kib_each"] = (rss_kib() - before) / count

    if kind == "go-plain":
        runtime.enable_coroutine(runtime.HOOK_SLEEP)
    co.set({"max_coroutine": count + 10})
    loop = uvloop.new_event_loop()
    loop.run_until_complete(main())  # the sleepers are left behind: the process exits
    return result


def switch_cost(count: int, kind: str) -> float:
    """Nanoseconds per suspension (and resumption) of one coroutine."""
    from pyswoole import coroutine as co
    from pyswoole import runtime

    result = {}

    def plain() -> None:
        sleep = time.sleep
        started = time.process_time()
        for _ in range(count):
            sleep(0)
        result["seconds"] = time.process_time() - started

    async def native() -> None:
        sleep = asyncio.sleep
        started = time.process_time()
        for _ in range(count):
            await sleep(0)
        result["seconds"] = time.process_time() - started

    if kind == "hooked":
        runtime.enable_coroutine(runtime.HOOK_SLEEP)
        co.run(plain)
    else:
        co.run(native)
    return result["seconds"] / count * 1e9


CASES = {
    "pingpong:Channel(1) uvloop": lambda a: {"rt_per_s": pingpong_channel(a.count)},
    "pingpong:asyncio.Queue(1) uvloop": lambda a: {"rt_per_s": pingpong_queue(a.count, True)},
    "pingpong:asyncio.Queue(1) default loop": lambda a: {"rt_per_s": pingpong_queue(a.count, False)},
    "spawn:go() async, returns at once": lambda a: {"per_s": spawn_rate(a.count, "go", False)},
    "spawn:create_task, returns at once": lambda a: {"per_s": spawn_rate(a.count, "task", False)},
    "spawn:go() async, suspends once": lambda a: {"per_s": spawn_rate(a.count, "go", True)},
    "spawn:create_task, suspends once": lambda a: {"per_s": spawn_rate(a.count, "task", True)},
    "spawn:go() plain function (greenlet)": lambda a: {"per_s": spawn_rate(a.count, "go-plain", False)},
    "memory:go() async sleeping": lambda a: sleepers(a.sleepers, "go"),
    "memory:create_task sleeping": lambda a: sleepers(a.sleepers, "task"),
    "memory:go() plain, hooked time.sleep": lambda a: sleepers(a.sleepers, "go-plain"),
    "switch:hooked time.sleep(0), plain coroutine": lambda a: {"ns": switch_cost(a.count, "hooked")},
    "switch:await asyncio.sleep(0), uvloop": lambda a: {"ns": switch_cost(a.count, "native")},
}


# -- driver ---------------------------------------------------------------------------------


def run_child(case: str, args: object) -> dict[str, float]:
    """One measurement in a fresh process (retried once if that process fails)."""
    command = [
        sys.executable,
        __file__,
        "--child",
        case,
        "--count",
        str(args.count),
        "--sleepers",
        str(args.sleepers),
    ]
    for attempt in (1, 2):
        done = subprocess.run(
            pinned(SERVER_CPU, command), capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode == 0:
            return json.loads(done.stdout.strip().splitlines()[-1])
        log(f"{case}: attempt {attempt} failed with status {done.returncode}: {done.stderr.strip()[-500:]}")
    raise RuntimeError(f"{case} failed twice")


def main() -> None:
    parser = bench_arguments(__doc__.splitlines()[0], reps=5)
    parser.add_argument("--count", type=int, default=200_000, help="round trips / spawns / switches per rep")
    parser.add_argument(
        "--sleepers", type=int, default=100_000, help="sleeping coroutines for the memory figure"
    )
    parser.add_argument("--child", help=argparse_hidden())
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CASES[args.child](args)))
        return
    samples: dict[str, list[dict[str, float]]] = {case: [] for case in CASES}
    for rep in range(args.reps):
        for case in CASES:
            samples[case].append(run_child(case, args))
        log(f"rep {rep + 1}/{args.reps} done")
    body = render(samples, args)
    if args.no_write:
        print(body)
    else:
        write_section("coroutine", body, RESULTS)
        log(f"wrote {RESULTS}")


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def median(samples: list[dict[str, float]], key: str) -> float:
    return statistics.median(s[key] for s in samples)


def render(samples: dict[str, list[dict[str, float]]], args: object) -> str:
    def rows(group: str, key: str) -> list[list[object]]:
        return [
            [case.split(":", 1)[1], median(reps, key), f"±{spread([r[key] for r in reps]):.0%}"]
            for case, reps in samples.items()
            if case.startswith(group + ":")
        ]

    def figure(case: str, key: str) -> float:
        return median(samples[case], key)

    channel_ratio = figure("pingpong:Channel(1) uvloop", "rt_per_s") / figure(
        "pingpong:asyncio.Queue(1) uvloop", "rt_per_s"
    )
    spawn_now = figure("spawn:go() async, returns at once", "per_s") / figure(
        "spawn:create_task, returns at once", "per_s"
    )
    spawn_once = figure("spawn:go() async, suspends once", "per_s") / figure(
        "spawn:create_task, suspends once", "per_s"
    )
    memory = figure("memory:go() async sleeping", "mib")
    memory_rows = [
        [case.split(":", 1)[1], median(reps, "mib"), median(reps, "kib_each"), median(reps, "start_s")]
        for case, reps in samples.items()
        if case.startswith("memory:")
    ]
    body = f"""## Coroutines (issue 7)

{environment(parameters={"reps": args.reps, "count": args.count, "sleepers": args.sleepers})}
- Each figure from a fresh process pinned to CPU {SERVER_CPU} (the "server" CPU above; nothing
  runs on the other), in that process's CPU time; medians of {args.reps} alternated reps
  (± half the range).

### Channel ping-pong (round trips/s; target: Channel >= 1.5x asyncio.Queue on uvloop)

{markdown_table(["contender", "round trips/s", "spread"], rows("pingpong", "rt_per_s"))}

Channel / asyncio.Queue(1) on uvloop: **{channel_ratio:.2f}x**.

### Spawn and finish (coroutines/s; target: go() >= 0.8x create_task)

{markdown_table(["contender", "coroutines/s", "spread"], rows("spawn", "per_s"))}

go() / create_task: **{spawn_now:.2f}x** for a body that returns at once (no Task is made),
**{spawn_once:.2f}x** for one that suspends once.

### {args.sleepers:,} sleeping coroutines (target: < 250 MiB)

{markdown_table(["contender", "RSS growth MiB", "KiB each", "start s"], memory_rows)}

go() with async sleepers: **{memory:.0f} MiB**.

### One suspension (ns per switch out and back)

{markdown_table(["contender", "ns", "spread"], rows("switch", "ns"))}
"""
    return body


if __name__ == "__main__":
    main()
