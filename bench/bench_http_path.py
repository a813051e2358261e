"""The HTTP request path in-process: CPU time per keep-alive ``GET /`` through ``HttpConnection``.

A fake transport and worker stand in for the socket and the process, so what is measured is
the Python work per request (parser callbacks, Request/Response, handler start, head building,
the write), without syscalls: ``time.process_time()`` per request, the steady figure on a busy
machine. ``--pipeline N`` feeds N requests per read; ``--profile`` prints a cProfile of one run.

    python3 bench/bench_http_path.py [--requests 200000] [--pipeline 1] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import time

import uvloop
from path_support import FakeTransport, FakeWorker

from pyswoole.http import Request, Response, Server
from pyswoole.http.connection import HttpConnection

GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:18622\r\n\r\n"  # what wrk sends


def make_server(handler: str, static: bool) -> Server:
    server = Server("127.0.0.1", 0)
    if static:  # as bench/servers/pyswoole_http.py: the static handler looks at every request first
        server.set(
            {"document_root": "/tmp", "enable_static_handler": True, "static_handler_locations": ["/static"]}
        )

    if handler == "async":

        @server.on("request")
        async def on_request(request: Request, response: Response) -> None:
            response.header("Content-Type", "text/plain")
            response.end("Hello, World!")

    else:

        @server.on("request")
        def on_request(request: Request, response: Response) -> None:  # type: ignore[misc]
            response.header("Content-Type", "text/plain")
            response.end("Hello, World!")

    return server


async def measure(
    requests: int, pipeline: int, handler: str, profile: bool, freeze: bool, static: bool
) -> float:
    server = make_server(handler, static)
    worker = FakeWorker(server, asyncio.get_running_loop())
    conn = HttpConnection(worker, server.ports[0])  # type: ignore[arg-type]
    transport = FakeTransport()
    conn.connection_made(transport)
    data = GET * pipeline
    reads = requests // pipeline
    for _ in range(1000):  # warm-up
        conn.data_received(data)
    gc.collect()
    if freeze:
        gc.freeze()
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
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--pipeline", type=int, default=1)
    parser.add_argument("--handler", choices=["async", "plain"], default="async")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after the warm-up")
    parser.add_argument("--static", action="store_true", help="static handler on /static, as in bench_http")
    args = parser.parse_args()
    results = []
    for _ in range(1 if args.profile else args.reps):
        results.append(
            uvloop.run(
                measure(args.requests, args.pipeline, args.handler, args.profile, args.gc_freeze, args.static)
            )
        )
    results.sort()
    print(
        f"{args.handler} handler, pipeline {args.pipeline}{', gc.freeze()' if args.gc_freeze else ''}"
        f"{', static handler' if args.static else ''}: "
        f"{results[len(results) // 2]:.2f} µs CPU/request (min {results[0]:.2f})"
    )


if __name__ == "__main__":
    main()
