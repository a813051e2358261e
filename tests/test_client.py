"""The blocking Client, KEEP reuse, client_select and the coroutine client, against real servers."""

from __future__ import annotations

import contextlib
import errno
import resource
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import EXAMPLES, free_port, port_open, wait_for

from pyswoole import coroutine as co
from pyswoole.client import Client, client_select
from pyswoole.constants import KEEP, SOCK_TCP, SOCK_UDP, SOCK_UNIX_STREAM, SSL


@pytest.fixture(scope="module")
def tcp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """examples/tcpS.py (one worker): replies ``Server: <data>`` and logs each connect."""
    from helpers import ServerProcess

    port = free_port()
    server = ServerProcess(
        [str(EXAMPLES / "tcpS.py"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        tmp_path_factory.mktemp("tcps"),
    )
    server.start(lambda: port_open(port))
    server.port = port  # type: ignore[attr-defined]
    yield server
    server.stop()


class ThreadServer:
    """A tiny TCP or Unix server in a thread: ``handler(conn)`` runs for every accepted connection."""

    def __init__(self, handler: Callable[[socket.socket], None], path: str | None = None) -> None:
        self.listener = socket.socket(socket.AF_UNIX if path else socket.AF_INET)
        self.listener.bind(path or ("127.0.0.1", 0))
        self.listener.listen(64)
        self.address = path or self.listener.getsockname()
        self.port = 0 if path else self.listener.getsockname()[1]
        self.handler = handler
        self.accepted = 0
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            self.connections.append(conn)
            threading.Thread(target=self.handler, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(5)
        for conn in self.connections:
            conn.close()


@pytest.fixture
def thread_server() -> Iterator[Callable[..., ThreadServer]]:
    servers: list[ThreadServer] = []

    def start(handler: Callable[[socket.socket], None], path: str | None = None) -> ThreadServer:
        servers.append(ThreadServer(handler, path))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def echo(conn: socket.socket) -> None:
    with conn, contextlib.suppress(OSError):  # the fixture may close it under us at the end
        while data := conn.recv(65536):
            conn.sendall(b"Server: " + data)


def test_tcp_client_against_tcps_example(tcp_server: Any):
    client = Client(SOCK_TCP)
    assert client.connect("127.0.0.1", tcp_server.port, 0.5)
    assert client.is_connected()
    assert client.getpeername() == {"host": "127.0.0.1", "port": tcp_server.port}
    assert client.send("hello\n") == 6
    assert client.recv() == b"Server: hello\n"
    assert client.close()
    assert not client.is_connected()
    assert client.recv() is False and client.errCode == errno.ENOTCONN


def test_connect_failure_and_recv_timeout_set_errcode(thread_server: Any):
    client = Client(SOCK_TCP)
    assert client.connect("127.0.0.1", free_port(), 0.5) is False
    assert client.errCode == errno.ECONNREFUSED
    silent = thread_server(lambda conn: conn.recv(10))
    client = Client(SOCK_TCP)
    assert client.connect("127.0.0.1", silent.port, 0.1)
    assert client.recv() is False
    assert client.errCode == errno.ETIMEDOUT
    client.close()


def test_keep_reuses_the_connection_and_reconnects_when_it_died(tcp_server: Any, thread_server: Any):
    before = tcp_server.output().count("Connect.")
    first = Client(SOCK_TCP | KEEP)
    assert first.connect("127.0.0.1", tcp_server.port) and first.reuse is False
    assert first.send("one") and first.recv() == b"Server: one"
    first.close()
    second = Client(SOCK_TCP, keep=True)
    assert second.connect("127.0.0.1", tcp_server.port) and second.reuse is True
    assert second.send("two") and second.recv() == b"Server: two"
    second.close(force=True)
    third = Client(SOCK_TCP, keep=True)
    assert third.connect("127.0.0.1", tcp_server.port) and third.reuse is False
    third.close(force=True)
    tcp_server.wait_output("Connect.", count=before + 2)
    assert tcp_server.output().count("Connect.") == before + 2

    closing = thread_server(lambda conn: conn.close())
    died = Client(SOCK_TCP, keep=True, key="dying")
    assert died.connect("127.0.0.1", closing.port)
    died.close()
    time.sleep(0.05)  # let the server's close arrive
    again = Client(SOCK_TCP, keep=True, key="dying")
    assert again.connect("127.0.0.1", closing.port)
    assert again.reuse is False
    wait_for(lambda: closing.accepted == 2, 5, message="the dead connection was not replaced")
    again.close(force=True)


def test_framing_returns_whole_packets_and_rejects_oversized_ones(thread_server: Any):
    packets = [struct.pack(">I", len(body)) + body for body in (b"abc", b"", b"x" * 5000)]
    replies = {
        b"len": b"".join(packets),
        b"eof": b"line one\r\nline two\r\n",
        b"big": struct.pack(">I", 10_000_000) + b"x" * 100,
        b"neg": struct.pack(">i", -5) + b"x",
    }

    def send_split(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the client may close first
            wire = replies[conn.recv(3)]
            for start in range(0, len(wire), 7):
                conn.sendall(wire[start : start + 7])
            conn.recv(10)

    server = thread_server(send_split)

    def client_for(command: bytes, settings: dict[str, Any]) -> Client:
        client = Client(SOCK_TCP)
        client.set(settings)
        assert client.connect("127.0.0.1", server.port, 2)
        client.send(command)
        return client

    length = {"open_length_check": True, "package_length_type": "N", "package_body_offset": 4}
    client = client_for(b"len", length)
    assert [client.recv() for _ in range(3)] == packets
    client.close()
    client = client_for(b"eof", {"open_eof_split": True, "package_eof": "\r\n"})
    assert [client.recv(), client.recv()] == [b"line one\r\n", b"line two\r\n"]
    client.close()
    client = client_for(b"big", {**length, "package_max_length": 1024})
    assert client.recv() is False
    assert client.errCode == errno.EPROTO and "package_max_length" in client.errMsg
    client.close()
    client = client_for(b"neg", {**length, "package_length_type": "l"})
    assert client.recv() is False and "negative" in client.errMsg
    client.close()
    with pytest.raises(ValueError, match="unknown client settings"):
        client.set({"open_length_checks": True})


def test_udp_and_unix_clients(thread_server: Any, tmp_path: Path):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))

    def udp_echo() -> None:
        data, address = udp.recvfrom(65536)
        udp.sendto(b"Server: " + data, address)

    thread = threading.Thread(target=udp_echo, daemon=True)
    thread.start()
    client = Client(SOCK_UDP)
    assert client.sendto("127.0.0.1", udp.getsockname()[1], "hello udp\n")
    assert client.recv() == b"Server: hello udp\n"
    client.close()
    thread.join(5)
    udp.close()

    path = str(tmp_path / "echo.sock")
    thread_server(echo, path)
    unix = Client(SOCK_UNIX_STREAM)
    assert unix.connect(path)
    assert unix.send(b"over unix") and unix.recv() == b"Server: over unix"
    assert unix.getpeername() == {"host": path, "port": 0}
    unix.close()


def test_client_select_rewrites_the_lists_past_1024_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2400:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(2048)
    port = listener.getsockname()[1]
    clients, peers = [], []
    try:
        for _ in range(1100):
            client = Client(SOCK_TCP)
            assert client.connect("127.0.0.1", port, 2)
            clients.append(client)
            peers.append(listener.accept()[0])
        assert max(c.fileno() for c in clients) > 1024
        read, write, error = list(clients), [], []
        assert client_select(read, write, error, 0.05) == 0 and read == []
        peers[1050].send(b"ping")
        peers[3].close()
        read, write, error = list(clients), clients[:2], list(clients)
        assert client_select(read, write, error, 1) == 4
        assert read == [clients[3], clients[1050]]
        assert write == clients[:2] and error == []
        assert clients[1050].recv() == b"ping"
    finally:
        for sock in peers:
            sock.close()
        for client in clients:
            client.close()
        listener.close()


def test_coroutine_client(tcp_server: Any):
    seen: dict[str, Any] = {}

    async def main() -> None:
        client = co.Client(SOCK_TCP)
        seen["connect"] = await client.connect("localhost", tcp_server.port, 1)
        seen["send"] = await client.send("hello\n")
        seen["recv"] = await client.recv(1)
        seen["timeout"] = (await client.recv(0.05), client.errCode)
        client.close()
        refused = co.Client(SOCK_TCP)
        seen["refused"] = (await refused.connect("127.0.0.1", free_port(), 1), refused.errCode)

    co.run(main)
    assert seen == {
        "connect": True,
        "send": 6,
        "recv": b"Server: hello\n",
        "timeout": (False, errno.ETIMEDOUT),
        "refused": (False, errno.ECONNREFUSED),
    }


def test_coroutine_client_one_socket_two_coroutines_is_an_error_and_close_wakes_waiters(tcp_server: Any):
    seen: dict[str, Any] = {}

    async def reader(client: co.Client, name: str) -> None:
        seen[f"{name}_cid"] = co.get_cid()
        try:
            seen[name] = (await client.recv(), client.errCode)
        except RuntimeError as exc:
            seen[name] = str(exc)

    async def main() -> None:
        client = co.Client(SOCK_TCP)
        await client.connect("127.0.0.1", tcp_server.port, 1)
        co.go(reader, client, "first")
        co.go(reader, client, "second")
        await co.sleep(0.02)
        client.close()

    co.run(main)
    assert seen["first"] == (False, errno.EBADF)
    assert f"bound to coroutine {seen['first_cid']}" in seen["second"]
    assert f"in coroutine {seen['second_cid']}" in seen["second"]


def test_coroutine_client_framing_and_udp(thread_server: Any):
    body = b"payload"
    server = thread_server(
        lambda conn: (conn.recv(10), conn.sendall((struct.pack(">I", len(body)) + body) * 3))
    )
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    seen: dict[str, Any] = {}

    async def main() -> None:
        client = co.Client(SOCK_TCP)
        client.set({"open_length_check": True})
        await client.connect("127.0.0.1", server.port, 1)
        await client.send("go")
        seen["packets"] = [await client.recv(1) for _ in range(3)]
        client.close()
        dgram = co.Client(SOCK_UDP)
        await dgram.connect("127.0.0.1", udp.getsockname()[1])
        await dgram.send("hello udp\n")
        data, address = udp.recvfrom(100)
        udp.sendto(b"Server: " + data, address)
        seen["udp"] = await dgram.recv(1)
        dgram.close()

    try:
        co.run(main)
    finally:
        udp.close()
    assert seen["packets"] == [struct.pack(">I", len(body)) + body] * 3
    assert seen["udp"] == b"Server: hello udp\n"


def test_blocking_clients_run_concurrently_in_coroutines_with_hooks(thread_server: Any):
    from pyswoole import runtime

    def slow_echo(conn: socket.socket) -> None:
        with conn:
            data = conn.recv(100)
            time.sleep(0.3)
            conn.sendall(b"Server: " + data)

    server = thread_server(slow_echo)
    replies: list[bytes] = []

    def call(n: int) -> None:
        client = Client(SOCK_TCP)
        assert client.connect("127.0.0.1", server.port, 2)
        client.send(f"{n}")
        replies.append(client.recv())
        client.close()

    def main() -> None:
        for n in range(20):
            co.go(call, n)

    runtime.enable_coroutine()
    try:
        started = time.monotonic()
        co.run(main)
        elapsed = time.monotonic() - started
    finally:
        runtime.disable_coroutine()
    assert sorted(replies) == sorted(f"Server: {n}".encode() for n in range(20))
    assert elapsed < 2.0, elapsed  # one after another: 6 s


TLS_ECHO = """
import asyncio, ssl, sys

async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(b"Server: " + data)
        await writer.drain()
    writer.close()

async def main(port, cert):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert)
    server = await asyncio.start_server(echo, "127.0.0.1", port, ssl=context)
    async with server:
        await server.serve_forever()

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


@pytest.fixture
def tls_echo(run_server: Any, tmp_path: Path) -> tuple[int, str]:
    cert = tmp_path / "cert.pem"
    command = [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
    ]
    subprocess.run([*command, "-keyout", cert, "-out", cert], check=True, capture_output=True, timeout=30)
    script = tmp_path / "tls_echo.py"
    script.write_text(TLS_ECHO)
    port = free_port()
    run_server([script, port, cert], ready=lambda: port_open(port))
    return port, str(cert)


def test_tls_clients(tls_echo: tuple[int, str], tmp_path: Path):
    port, cert = tls_echo
    text = tmp_path / "text.txt"
    text.write_bytes(b"from a file")
    client = Client(SOCK_TCP | SSL)
    client.set({"ssl_verify_peer": True, "ssl_cafile": cert, "ssl_host_name": "localhost"})
    assert client.connect("127.0.0.1", port, 2), client.errMsg
    assert client.send("secret") and client.recv() == b"Server: secret"
    client.close()
    untrusted = Client(SOCK_TCP | SSL)
    untrusted.set({"ssl_verify_peer": True})
    assert untrusted.connect("127.0.0.1", port, 2) is False
    assert "certificate verify failed" in untrusted.errMsg, untrusted.errMsg
    seen: dict[str, Any] = {}

    async def main() -> None:
        coclient = co.Client(SOCK_TCP | SSL)
        seen["connect"] = await coclient.connect("127.0.0.1", port, 2)
        seen["send"] = await coclient.send("over tls")
        seen["recv"] = await coclient.recv(2)
        seen["sendfile"] = await coclient.sendfile(str(text))
        seen["file_reply"] = await coclient.recv(2)
        coclient.close()

    co.run(main)
    assert seen == {
        "connect": True,
        "send": 8,
        "recv": b"Server: over tls",
        "sendfile": True,
        "file_reply": b"Server: from a file",
    }


def test_sendfile_waitall_peer_close_and_coroutine_datagrams(thread_server: Any, tmp_path: Path):
    def collect(conn: socket.socket) -> None:
        with conn:
            data = b""
            while len(data) < 10_000:
                data += conn.recv(65536)
            conn.sendall(data[:6000])
            time.sleep(0.05)
            conn.sendall(data[6000:])

    server = thread_server(collect)
    path = tmp_path / "payload.bin"
    payload = bytes(range(256)) * 40
    path.write_bytes(payload[:10_000])
    client = Client(SOCK_TCP)
    assert client.connect("127.0.0.1", server.port, 2)
    assert client.sendfile(str(path))
    assert client.recv(10_000, socket.MSG_WAITALL) == payload[:10_000]
    assert client.recv() == b""  # the server closed
    client.close()

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp_address = udp.getsockname()
    seen: dict[str, Any] = {}

    async def main() -> None:
        dgram = co.Client(SOCK_UDP)
        seen["sendto"] = await dgram.sendto(*udp_address, "ping")
        data, address = udp.recvfrom(100)
        udp.sendto(b"pong:" + data, address)
        seen["recvfrom"] = await dgram.recvfrom(100, 1)
        seen["timeout"] = (await dgram.recvfrom(100, 0.02), dgram.errCode)
        dgram.close()
        stream = co.Client(SOCK_TCP)
        await stream.connect("127.0.0.1", server.port, 1)
        await stream.send(payload[:10_000])
        received = b""
        while chunk := await stream.recv(1):
            received += chunk
        seen["stream"] = received
        stream.close()
        files = co.Client(SOCK_TCP)
        await files.connect("127.0.0.1", server.port, 1)
        seen["sendfile"] = [await files.sendfile(str(path), 0, 4000), await files.sendfile(str(path), 4000)]
        received = b""
        while chunk := await files.recv(1):
            received += chunk
        seen["files"] = received
        seen["shutdown"] = files.shutdown(socket.SHUT_WR)
        files.close()
        seen["unconnected"] = (files.shutdown(), files.errCode, await files.sendfile(str(path)))

    try:
        co.run(main)
    finally:
        udp.close()
    assert seen["sendto"] is True
    assert seen["recvfrom"] == (b"pong:ping", udp_address)
    assert seen["timeout"] == (False, errno.ETIMEDOUT)
    assert seen["stream"] == payload[:10_000]
    assert seen["sendfile"] == [True, True] and seen["files"] == payload[:10_000]
    assert seen["shutdown"] is True
    assert seen["unconnected"] == (False, errno.ENOTCONN, False)
