"""Task round trips on pyswoole: on ``run N blocking|co`` the worker makes N ``taskwait`` calls in a
row and answers with the timing. The server side of bench/bench_tasks.py."""

from __future__ import annotations

import argparse
import json
import time

import pyswoole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--task-workers", type=int, default=1)
    args = parser.parse_args()

    server = pyswoole.Server("127.0.0.1", args.port, mode=pyswoole.BASE)
    server.set({"worker_num": 1, "task_worker_num": args.task_workers, "log_level": pyswoole.LOG_WARNING})

    @server.on("task")
    def on_task(server, task_id, src_worker_id, data):
        return data

    def summary(latencies: list[float], seconds: float) -> bytes:
        latencies.sort()
        n = len(latencies)
        return json.dumps(
            {
                "per_s": n / seconds,
                "p50_us": latencies[n // 2] * 1e6,
                "p99_us": latencies[int(n * 0.99)] * 1e6,
            }
        ).encode()

    async def run_co(fd: int, count: int) -> None:
        latencies = []
        start = time.perf_counter()
        for i in range(count):
            t = time.perf_counter()
            assert await server.taskwait(i, 5) == i
            latencies.append(time.perf_counter() - t)
        server.send(fd, summary(latencies, time.perf_counter() - start))

    @server.on("receive")
    def on_receive(server, fd, reactor_id, data):
        _, count, style = data.decode().split()
        if style == "co":
            return run_co(fd, int(count))
        latencies = []
        start = time.perf_counter()
        for i in range(int(count)):
            t = time.perf_counter()
            assert server.taskwait(i, 5) == i
            latencies.append(time.perf_counter() - t)
        server.send(fd, summary(latencies, time.perf_counter() - start))
        return None

    server.start()


if __name__ == "__main__":
    main()
