"""The WebSocket echo path in-process: CPU time per 64-byte text message through
``WebSocketConnection``, and the same through picows' protocol.

A fake transport and worker stand in for the socket and the process, so what is measured is
the Python work per message of bench_websocket.py's echo (``data_received``, the codec, the
``message`` callback, ``push``, the write), without syscalls: ``time.process_time()`` per
message, the steady figure on a busy machine. picows is driven the same way (its
``BufferedProtocol`` gets the bytes through ``get_buffer``/``buffer_updated``), for scale.
``--profile`` prints a cProfile of one pyswoole run.

    python3 bench/bench_ws_path.py [--messages 200000] [--payload 64] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import gc
import pstats
import socket
import time
from typing import Any

import uvloop

from pyswoole.protocol.websocket import WebSocketCodec
from pyswoole.websocket import Frame, Server
from pyswoole.websocket.server import WebSocketConnection, bad_request_page

KEY = base64.b64encode(b"0123456789abcdef").decode()
UPGRADE = (
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()


class FakeTransport:
    """Counts the writes; never closes."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.written = 0
        self.writes = 0
        self.sock = sock

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.written += len(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self.sock
        return ("127.0.0.1", 40000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int = 0, low: int = 0) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class FakeRegistry:
    def touch(self, *args: Any) -> None:
        pass

    def set_websocket_status(self, fd: int, status: int) -> None:
        pass

    def get(self, fd: int) -> None:
        return None


class FakeWorker:
    """What a connection reads from its worker."""

    def __init__(self, server: Server, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self.worker_id = 0
        self.clock = int(time.time())
        self.settings = {"buffer_output_size": 2 * 1024 * 1024, "heartbeat_check_interval": 0}
        self.registry = FakeRegistry()
        self.request_count = 0
        self.max_request = 0
        self.connections: dict[int, Any] = {}
        self.handoff = None

    def open_connection(self, conn: WebSocketConnection) -> bool:
        conn.fd = 1
        conn.remote = ("127.0.0.1", 40000)
        self.connections[1] = conn
        return True


def masked_message(payload: int) -> bytes:
    return WebSocketCodec(client=True).encode("x" * payload)


async def measure_pyswoole(messages: int, payload: int, profile: bool) -> float:
    server = Server("127.0.0.1", 0)

    @server.on("message")
    def on_message(server: Server, frame: Frame) -> None:  # bench_websocket.py's echo
        server.push(frame.fd, frame.data, frame.opcode)

    server.callbacks.setdefault("request", bad_request_page)  # as Server.start() does
    worker = FakeWorker(server, asyncio.get_running_loop())
    server._worker = worker  # type: ignore[assignment]
    conn = WebSocketConnection(worker, server.ports[0])  # type: ignore[arg-type]
    transport = FakeTransport()
    conn.connection_made(transport)
    conn.data_received(UPGRADE)
    assert conn.codec is not None, "the upgrade failed"
    data = masked_message(payload)
    for _ in range(1000):  # warm-up
        conn.data_received(data)
    gc.collect()
    writes = transport.writes
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    start = time.process_time()
    for _ in range(messages):
        conn.data_received(data)
    elapsed = time.process_time() - start
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    assert transport.writes - writes == messages, "one write per message"
    return elapsed / messages * 1e6


async def measure_picows(messages: int, payload: int) -> float:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport
    from picows.picows import WSProtocol

    class Echo(WSListener):  # bench_websocket.py's picows server
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            else:
                transport.send(frame.msg_type, frame.get_payload_as_memoryview())

    from picows.api import WSAutoPingStrategy, _resolve_logger

    protocol = WSProtocol(  # as ws_create_server makes it, with its defaults
        None,
        None,
        False,
        lambda _request: Echo(),
        _resolve_logger(None, "server"),
        True,
        5,
        False,
        20,
        20,
        WSAutoPingStrategy.PING_WHEN_IDLE,
        True,
        10 * 1024 * 1024,
        None,
        16 * 1024,
    )
    with socket.create_server(("127.0.0.1", 0)) as listener:  # picows sets TCP options on it
        sock = socket.create_connection(listener.getsockname())
    transport = FakeTransport(sock)
    protocol.connection_made(transport)

    def feed(data: bytes) -> None:
        buffer = protocol.get_buffer(len(data))
        buffer[: len(data)] = data
        protocol.buffer_updated(len(data))

    feed(UPGRADE)
    data = masked_message(payload)
    for _ in range(1000):
        feed(data)
    gc.collect()
    writes = transport.writes
    start = time.process_time()
    for _ in range(messages):
        feed(data)
    elapsed = time.process_time() - start
    sock.close()
    assert transport.writes - writes == messages, "one write per message"
    return elapsed / messages * 1e6


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--payload", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-picows", action="store_true")
    args = parser.parse_args()
    if args.profile:
        uvloop.run(measure_pyswoole(args.messages, args.payload, True))
        return
    ours = [uvloop.run(measure_pyswoole(args.messages, args.payload, False)) for _ in range(args.reps)]
    print(f"pyswoole: {median(ours):.3f} µs CPU/message (min {min(ours):.3f})")
    if not args.no_picows:
        theirs = [uvloop.run(measure_picows(args.messages, args.payload)) for _ in range(args.reps)]
        print(f"picows:   {median(theirs):.3f} µs CPU/message (min {min(theirs):.3f})")


if __name__ == "__main__":
    main()
