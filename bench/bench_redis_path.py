"""The RESP command path in-process: CPU time per command through ``RedisConnection`` and the
kv example's store (examples/kv_server.py), on redis-benchmark's own requests.

A fake transport and worker stand in for the socket and the process, so what is measured is the
Python work per command (parsing, dispatch, the handler and its Table access, the reply, the
write), without syscalls: ``time.process_time()`` per command, the steady figure on a busy
machine. ``--pipeline N`` feeds N commands per read (redis-benchmark's ``-P``); ``--profile``
prints a cProfile of one run.

    python3 bench/bench_redis_path.py [--commands 200000] [--pipeline 16] [--tests set,get] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import importlib.util
import pstats
import statistics
import time
from pathlib import Path
from typing import Any

import uvloop
from path_support import FakeTransport, FakeWorker

from pyswoole.redis import Server
from pyswoole.redis.server import RedisConnection

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "kv_server.py"


def request(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


#: What redis-benchmark -t ping,set,get,incr sends (without -r the key is spelt literally).
TESTS = {
    "ping_inline": b"PING\r\n",
    "ping_mbulk": request(b"PING"),
    "set": request(b"SET", b"key:__rand_int__", b"xxx"),
    "get": request(b"GET", b"key:__rand_int__"),
    "incr": request(b"INCR", b"counter:__rand_int__"),
}


def load_example(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("kv_server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def measure(kv: Any, test: str, commands: int, pipeline: int, profile: bool) -> float:
    server = Server("127.0.0.1", 0)
    store = kv.Store(1024, 1024)
    store.set(server, 0, [b"key:__rand_int__", b"xxx"])  # GET finds it, as after redis-benchmark's SET
    kv.register(server, store)
    worker = FakeWorker(server, asyncio.get_running_loop())
    conn = RedisConnection(worker, server.ports[0])  # type: ignore[arg-type]
    transport = FakeTransport()
    conn.connection_made(transport)
    data = TESTS[test] * pipeline
    reads = commands // pipeline
    for _ in range(1000):  # warm-up
        conn.data_received(data)
    gc.collect()
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    start = time.process_time()
    for _ in range(reads):
        conn.data_received(data)
    elapsed = time.process_time() - start
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    assert transport.writes == 1000 + reads, "one write per read"
    return elapsed / (reads * pipeline) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--tests", default=",".join(TESTS), help=f"some of {','.join(TESTS)}")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--example", type=Path, default=EXAMPLE, help="another version of kv_server.py")
    args = parser.parse_args()
    kv = load_example(args.example)
    for test in args.tests.split(","):
        results = [
            uvloop.run(measure(kv, test, args.commands, args.pipeline, args.profile))
            for _ in range(1 if args.profile else args.reps)
        ]
        print(
            f"{test:12} -P {args.pipeline:<3} {statistics.median(results):.3f} µs CPU/command "
            f"(min {min(results):.3f})"
        )


if __name__ == "__main__":
    main()
