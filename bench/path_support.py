"""Stand-ins for the socket and the worker, shared by the in-process path benchmarks
(bench_http_path, bench_asgi_path, bench_ws_path, bench_redis_path): a connection driven through
them does all its Python work and no system call."""

from __future__ import annotations

import asyncio
import time
from typing import Any


class FakeTransport:
    """Counts the writes and the bytes written; never closes."""

    def __init__(self) -> None:
        self.written = 0
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.written += len(data)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
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
    """The shared connection table, which the measured path only writes to."""

    def touch(self, *args: Any) -> None:
        pass

    def set_websocket_status(self, fd: int, status: int) -> None:
        pass

    def get(self, fd: int) -> None:
        return None


class FakeWorker:
    """What a connection reads from its worker."""

    def __init__(self, server: Any, loop: asyncio.AbstractEventLoop) -> None:
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

    def open_connection(self, conn: Any) -> bool:
        conn.fd = 1
        conn.remote = ("127.0.0.1", 40000)
        self.connections[1] = conn
        return True
