"""The WebSocket echo path in-process: CPU time per 64-byte text message through
``WebSocketConnection``.

A fake transport and worker stand in for the socket and the process, so what is measured is
the Python work per message of bench_websocket.py's echo (``data_received``, the codec, the
``message`` callback, ``push``, the write), without syscalls: ``time.process_time()`` per
message, the steady figure on a busy machine. ``--profile`` prints a cProfile of one run.

    python3 bench/bench_ws_path.py [--messages 200000] [--payload 64] [--pipeline 1] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import gc
import pstats
import time

import uvloop
from path_support import FakeTransport, FakeWorker

from pyswoole.protocol.websocket import WebSocketCodec
from pyswoole.websocket import Frame, Server
from pyswoole.websocket.server import WebSocketConnection, bad_request_page

KEY = base64.b64encode(b"0123456789abcdef").decode()
UPGRADE = (
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()


def masked_message(payload: int) -> bytes:
    return WebSocketCodec(client=True).encode("x" * payload)


async def measure(messages: int, payload: int, pipeline: int, profile: bool) -> float:
    server = Server("127.0.0.1", 0)

    @server.on("message")
    def on_message(server: Server, frame: Frame) -> None:  # bench_websocket.py's echo
        server.push(frame.fd, frame.data, frame.opcode)

    server.callbacks.setdefault("request", bad_request_page)  # as Server.start() does
    worker = FakeWorker(server, asyncio.get_running_loop())
    server._worker = worker  # type: ignore[assignment]
    server._connections = worker.connections
    conn = WebSocketConnection(worker, server.ports[0])  # type: ignore[arg-type]
    transport = FakeTransport()
    conn.connection_made(transport)
    conn.data_received(UPGRADE)
    assert conn.codec is not None, "the upgrade failed"
    data = masked_message(payload) * pipeline
    reads = messages // pipeline
    for _ in range(1000):  # warm-up
        conn.data_received(data)
    gc.collect()
    writes = transport.writes
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    start = time.process_time()
    for _ in range(reads):
        conn.data_received(data)
    elapsed = time.process_time() - start
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    assert transport.writes - writes == reads, "one write per read"
    return elapsed / (reads * pipeline) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--payload", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--pipeline", type=int, default=1, help="messages per read")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.profile:
        uvloop.run(measure(args.messages, args.payload, args.pipeline, True))
        return
    results = sorted(
        uvloop.run(measure(args.messages, args.payload, args.pipeline, False)) for _ in range(args.reps)
    )
    print(
        f"{args.payload}-byte text echo, {args.pipeline} per read: "
        f"{results[len(results) // 2]:.3f} µs CPU/message (min {results[0]:.3f})"
    )


if __name__ == "__main__":
    main()
