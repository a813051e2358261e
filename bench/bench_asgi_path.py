"""The ASGI request path in-process: CPU time per keep-alive ``GET /`` through ``HttpConnection``
and ``ASGIHandler`` with the raw ASGI hello app of bench/servers/asgi_hello.py (what
``pyswoole serve`` runs in bench_http.py).

The fake transport and worker of bench_http_path.py stand in for the socket and the process, so
what is measured is the Python work per request (parser, scope, receive/send, head building, the
write, and the loop iterations a Task costs), without syscalls: ``time.process_time()`` per
request. ``--pipeline N`` feeds N requests per read; ``--app`` picks the application
(``hello``: the raw app; ``starlette``: a Starlette route answering the same body);
``--profile`` prints a cProfile of one run.

    python3 bench/bench_asgi_path.py [--requests 100000] [--pipeline 1] [--app hello] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import uvloop
from bench_http_path import GET
from path_support import FakeTransport, FakeWorker

from pyswoole import asgi
from pyswoole.http import Server
from pyswoole.http.connection import HttpConnection

sys.path.insert(0, str(Path(__file__).parent / "servers"))
import asgi_hello


def make_app(name: str) -> Any:
    if name == "hello":
        return asgi_hello.app
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("Hello, World!")

    return Starlette(routes=[Route("/", hello)])


async def measure(requests: int, pipeline: int, app: str, profile: bool) -> float:
    server = Server("127.0.0.1", 0)
    asgi.attach(server, make_app(app), lifespan="off")
    worker = FakeWorker(server, asyncio.get_running_loop())
    conn = HttpConnection(worker, server.ports[0])  # type: ignore[arg-type]
    transport = FakeTransport()
    conn.connection_made(transport)
    data = GET * pipeline
    reads = requests // pipeline

    async def run(count: int) -> None:
        for _ in range(count):
            before = transport.written
            conn.data_received(data)
            while conn.active is not None or conn.queue or transport.written == before:
                await asyncio.sleep(0)  # responses made in Tasks: let the loop run them

    await run(1000)  # warm-up
    gc.collect()
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    start = time.process_time()
    await run(reads)
    elapsed = time.process_time() - start
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return elapsed / (reads * pipeline) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--pipeline", type=int, default=1)
    parser.add_argument("--app", choices=["hello", "starlette"], default="hello")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    results = []
    for _ in range(1 if args.profile else args.reps):
        results.append(uvloop.run(measure(args.requests, args.pipeline, args.app, args.profile)))
    results.sort()
    print(
        f"ASGI {args.app}, pipeline {args.pipeline}: "
        f"{results[len(results) // 2]:.2f} µs CPU/request (min {results[0]:.2f})"
    )


if __name__ == "__main__":
    main()
