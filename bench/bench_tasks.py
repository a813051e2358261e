"""Task round trips: pyswoole's ``taskwait`` (blocking and from a coroutine) against
``multiprocessing.Pool.apply`` and ``ProcessPoolExecutor``, with 1 and 2 task workers, in one run.

Each rep runs every contender once (alternated); one contender makes ``--count`` round trips in a
row, one at a time, and reports round trips per second and the p50/p99 latency. Nothing is pinned:
a round trip crosses two processes, and pinning both to one CPU would measure the scheduler.
``--nice`` applies to this process, so every contender (pyswoole servers, pool workers, and the
callers) runs at that priority.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import harness

SERVER = Path(__file__).resolve().parent / "servers" / "pyswoole_tasks.py"


def echo(value: int) -> int:
    return value


def timed(call, count: int) -> dict[str, float]:
    latencies = []
    start = time.perf_counter()
    for i in range(count):
        t = time.perf_counter()
        assert call(i) == i
        latencies.append(time.perf_counter() - t)
    seconds = time.perf_counter() - start
    latencies.sort()
    return {
        "per_s": count / seconds,
        "p50_us": latencies[count // 2] * 1e6,
        "p99_us": latencies[int(count * 0.99)] * 1e6,
    }


def pyswoole_rep(task_workers: int, style: str, count: int) -> dict[str, float]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", str(port), "--task-workers", str(task_workers)],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not harness.port_accepts("127.0.0.1", port):
            if time.monotonic() > deadline:
                raise harness.BenchError("task server did not start")
            time.sleep(0.05)
        time.sleep(0.3)  # let the task workers announce themselves
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            sock.sendall(f"run {count // 10} {style}".encode())  # warm-up
            sock.recv(4096)
            sock.sendall(f"run {count} {style}".encode())
            return json.loads(sock.recv(4096))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = harness.bench_arguments(__doc__.splitlines()[0], reps=5)
    parser.add_argument("--count", type=int, default=20000, help="round trips per contender and rep")
    args = parser.parse_args()
    contenders = {}
    for workers in (1, 2):
        contenders[f"pyswoole taskwait ({workers} task)"] = lambda w=workers: pyswoole_rep(
            w, "blocking", args.count
        )
        contenders[f"pyswoole await taskwait ({workers} task)"] = lambda w=workers: pyswoole_rep(
            w, "co", args.count
        )
        contenders[f"multiprocessing.Pool({workers}).apply"] = lambda w=workers: _pool_rep(w, args.count)
        contenders[f"ProcessPoolExecutor({workers})"] = lambda w=workers: _executor_rep(w, args.count)
    if args.only:
        contenders = {
            k: v for k, v in contenders.items() if any(o.strip() in k for o in args.only.split(","))
        }
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    with harness.bench_session(args.nice):
        if harness.niceness:
            os.setpriority(os.PRIO_PROCESS, 0, harness.niceness)
        for rep in range(args.reps):
            for name, run in contenders.items():
                harness.log(f"rep {rep + 1}/{args.reps}: {name}")
                samples[name].append(run())
    baseline = (
        statistics.median(s["per_s"] for s in samples["multiprocessing.Pool(1).apply"])
        if ("multiprocessing.Pool(1).apply" in samples)
        else None
    )
    rows = []
    for name, reps in samples.items():
        rate = statistics.median(s["per_s"] for s in reps)
        rows.append(
            [
                name,
                rate,
                f"{rate / baseline:.2f}x" if baseline else "",
                statistics.median(s["p50_us"] for s in reps),
                statistics.median(s["p99_us"] for s in reps),
            ]
        )
    body = "\n".join(
        [
            "## Task round trips (issue 3)",
            "",
            harness.environment(
                parameters={"round trips per rep": args.count, "reps": args.reps, "pinning": "none"}
            ),
            "",
            harness.markdown_table(
                ["contender", "round trips/s", "vs Pool(1).apply", "p50 µs", "p99 µs"], rows
            ),
        ]
    )
    harness.publish("tasks", body, args.no_write, samples)


def _pool_rep(workers: int, count: int) -> dict[str, float]:
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        timed(lambda i: pool.apply(echo, (i,)), count // 10)
        return timed(lambda i: pool.apply(echo, (i,)), count)


def _executor_rep(workers: int, count: int) -> dict[str, float]:
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as executor:
        timed(lambda i: executor.submit(echo, i).result(), count // 10)
        return timed(lambda i: executor.submit(echo, i).result(), count)


if __name__ == "__main__":
    main()
