"""Shared pieces of the WebSocket server tests: a server script driven by its messages, and a
raw-socket client that can send what no client library would (unmasked frames, bad UTF-8, ...)."""

from __future__ import annotations

import json
import os
import socket
import ssl
import struct
import textwrap
from pathlib import Path

from helpers import ServerProcess, free_port, recv_until

APP_SOURCE = textwrap.dedent(
    """
    import json, os, sys, time
    from pyswoole import Table
    from pyswoole.websocket import Server, FLAG_FIN, FLAG_COMPRESS, OPCODE_TEXT
    from pyswoole.protocol.websocket import server_handshake

    port, settings, features = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3].split(",")
    ws = Server("127.0.0.1", port)
    ws.set({"worker_num": 2, "log_level": 1, **settings})

    members = Table(1024)  # a room's member list, kept by open and close as the demos do
    members.column("fd", Table.TYPE_INT)
    members.create()

    @ws.on("open")
    def on_open(server, request):
        print("open", request.fd, os.getpid(), request.server["request_uri"], flush=True)
        if request.get and "slow_open" in request.get:
            time.sleep(0.3)  # a slow member list: the client must not see the 101 before it is in it
        members.set(str(request.fd), {"fd": request.fd})
        if request.get and "greet" in request.get:
            server.push(request.fd, "Hello, welcome\\n")

    @ws.on("message")
    async def on_message(server, frame):
        data = frame.data
        if frame.opcode > 2:  # control frames surfaced by open_websocket_*_frame
            code = getattr(frame, "code", None)
            text = frame.reason if code is not None else bytes(data).decode()
            server.push(frame.fd, f"control {frame.opcode} {code} {text}")
            if code is not None:
                server.disconnect(frame.fd, 4000, "app answer")
            return
        if not isinstance(data, str) or not data.startswith("cmd:"):
            server.push(frame.fd, data, frame.opcode)
            return
        verb, _, arg = data[4:].partition(" ")
        if verb == "info":
            target = int(arg) if arg else frame.fd
            info = server.get_client_info(target) or {}
            server.push(frame.fd, json.dumps({
                "fd": frame.fd, "pid": os.getpid(), "worker_id": server.worker_id,
                "exist": server.exist(target), "established": server.is_established(target),
                "status": info.get("websocket_status"), "connections": list(server.connections),
            }))
        elif verb == "members":
            server.push(frame.fd, json.dumps(sorted(row["fd"] for _, row in members)))
        elif verb == "push":
            fd, _, text = arg.partition(" ")
            server.push(frame.fd, f"pushed {server.push(int(fd), text)}")
        elif verb == "compress":
            server.push(frame.fd, arg, OPCODE_TEXT, FLAG_FIN | FLAG_COMPRESS)
        elif verb == "broadcast":
            server.broadcast(None, f"Client-{frame.fd}: {arg}")
        elif verb == "disconnect":
            fd, code, reason = arg.split(" ", 2)
            server.disconnect(int(fd), int(code), reason)
        elif verb == "flood":  # this client stops reading: push until the output buffer is full
            for count in range(1, 2001):
                if not server.push(frame.fd, "f" * 65536):
                    break
            print("flood", frame.fd, count, server.push(frame.fd, "more"), flush=True)
        elif verb == "raise":
            raise RuntimeError("message handler failure for the test")
        elif verb == "reload":
            server.reload()

    @ws.on("close")
    def on_close(server, fd, reactor_id):
        members.delete(str(fd))
        print("close", fd, reactor_id, flush=True)

    if "handshake" in features:
        @ws.on("handshake")
        async def on_handshake(request, response):
            if request.header.get("x-token") == "crash":
                raise RuntimeError("handshake handler failure for the test")
            if request.header.get("x-token") != "secret":
                response.status(403)
                response.end("no token")
                return False
            agreed = server_handshake(request.get_method(), request.header, ["chat"])
            response.status(101)
            for name, value in agreed.headers:
                response.header(name, value)
            response.header("X-Handshake", "custom")
            response.end()
            return True

    if "nocontext" in features:
        from pyswoole.websocket import DeflateParams
        ws.set({"websocket_compression": DeflateParams(server_no_context_takeover=True, client_no_context_takeover=True)})

    if "request" in features:
        @ws.on("request")
        def on_request(request, response):
            response.end("plain http " + request.server["request_uri"])

    ws.start()
    """
)


class WsServer:
    """The app above in its own process group (2 workers, PROCESS mode)."""

    def __init__(
        self,
        workdir: Path,
        settings: dict | None = None,
        features: str = "",
        tls: ssl.SSLContext | None = None,
    ):
        self.port = free_port()
        self.tls = tls
        script = workdir / "ws_app.py"
        script.write_text(APP_SOURCE)
        self.process = ServerProcess(
            [str(script), str(self.port), json.dumps(settings or {}), features], workdir
        )

    def start(self) -> WsServer:
        self.process.start(self._answers, timeout=20)
        return self

    def _answers(self) -> bool:
        """Both workers answer (fd 1 and 2 go to different workers)."""
        request = b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"
        try:
            return all(http_exchange(self.port, request, self.tls).startswith(b"HTTP/1.1") for _ in range(2))
        except OSError:  # refused, or still starting
            return False

    def stop(self) -> None:
        self.process.stop()

    def output(self) -> str:
        return self.process.output()

    def url(self, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def upgrade_request(path: str = "/", extra: str = "", key: str = KEY) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


def frame(payload: bytes, opcode: int = 1, fin: bool = True, mask: bool = True, rsv: int = 0) -> bytes:
    """One client frame, built by hand."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    length = len(payload)
    bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([bit | length])
    elif length < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawClient:
    """A client on a plain socket: handshake, then hand-built frames; reads server frames."""

    def __init__(self, port: int, path: str = "/", extra: str = ""):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(upgrade_request(path, extra))
        head = recv_until(self.sock, lambda d: b"\r\n\r\n" in d)
        self.head, _, self.buffer = head.partition(b"\r\n\r\n")
        assert self.head.startswith(b"HTTP/1.1 101"), self.head

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_frame(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """(first byte, payload) of the next server frame; the server never masks."""
        self.sock.settimeout(timeout)
        while True:
            if len(self.buffer) >= 2:
                length = self.buffer[1] & 0x7F
                start = 2
                if length == 126:
                    length, start = struct.unpack("!H", self.buffer[2:4])[0], 4
                elif length == 127:
                    length, start = struct.unpack("!Q", self.buffer[2:10])[0], 10
                if len(self.buffer) >= start + length:
                    first, payload = self.buffer[0], self.buffer[start : start + length]
                    self.buffer = self.buffer[start + length :]
                    return first, payload
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buffer += chunk

    def recv_text(self) -> str:
        first, payload = self.recv_frame()
        assert first == 0x81, (first, payload)
        return payload.decode()

    def expect_close(self) -> tuple[int, str]:
        """The server's close frame (code, reason), then the end of the TCP connection."""
        first, payload = self.recv_frame()
        while first != 0x88:
            first, payload = self.recv_frame()
        code = struct.unpack("!H", payload[:2])[0] if payload else 1005
        self.sock.settimeout(5)
        rest = b""
        while chunk := self.sock.recv(65536):
            rest += chunk
        return code, payload[2:].decode()

    def close(self) -> None:
        self.sock.close()


def http_exchange(port: int, request: bytes, tls: ssl.SSLContext | None = None) -> bytes:
    """Send ``request`` on a fresh connection; everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        sock = tls.wrap_socket(raw, server_hostname="127.0.0.1") if tls is not None else raw
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data
