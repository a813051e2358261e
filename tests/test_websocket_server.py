"""The WebSocket server against real clients (ours, websockets, aiohttp, raw sockets) in a real
2-worker PROCESS-mode server. Protocol cases follow the Autobahn test suite's groups."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import struct
import time
import zlib

import aiohttp
import pytest
import websockets
from helpers import wait_for
from http_support import self_signed_certificate
from test_websocket_server_support import KEY, RawClient, WsServer, frame, http_exchange, upgrade_request

from pyswoole.protocol.websocket import accept_key
from pyswoole.websocket import ConnectionClosed, HandshakeError, connect

SETTINGS = {
    "package_max_length": 64 * 1024,
    "websocket_compression": True,
    "websocket_subprotocol": ["chat", "v2"],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = WsServer(tmp_path_factory.mktemp("ws"), SETTINGS).start()
    yield srv
    srv.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


async def info(ws, fd: int | None = None) -> dict:
    await ws.send("cmd:info" + (f" {fd}" if fd else ""))
    return json.loads(await ws.recv())


# -- handshake and HTTP ---------------------------------------------------------------------------
def test_open_push_and_echo_with_our_client(server):
    async def main():
        async with await connect(server.url("/?greet=1"), compression=False) as ws:
            assert await ws.recv() == "Hello, welcome\n"
            await ws.send("abc")
            assert await ws.recv() == "abc"
            await ws.send(b"\x00\xff")
            assert await ws.recv() == b"\x00\xff"
            me = await info(ws)
            assert me["established"] and me["exist"] and me["status"] == 2

    run(main())
    assert "open" in server.output()


def test_plain_http_gets_swooles_400_page_and_fires_close(server):
    before = server.output().count("close ")
    reply = http_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply == (
        b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/html; charset=UTF-8\r\n"
        b"Cache-Control: must-revalidate,no-cache,no-store\r\nContent-Length: 83\r\n"
        b"Server: swoole-http-server\r\n\r\n"
        b"<html><body><h2>HTTP 400 Bad Request</h2><hr><i>Powered by Swoole</i></body></html>"
    )
    wait_for(lambda: server.output().count("close ") > before, 5)


@pytest.mark.parametrize(
    ("request_bytes", "status", "header"),
    [
        (upgrade_request(key="short"), b"400", b""),
        (upgrade_request().replace(b"Version: 13", b"Version: 8"), b"426", b"Sec-WebSocket-Version: 13"),
        (
            upgrade_request().replace(b"GET", b"POST").replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n"),
            b"405",
            b"Allow: GET",
        ),
        (upgrade_request().replace(b"Connection: Upgrade", b"Connection: keep-alive"), b"400", b""),
    ],
    ids=["bad-key", "version", "method", "no-connection-upgrade"],
)
def test_bad_upgrade_requests_are_refused_with_their_status(server, request_bytes, status, header):
    reply = http_exchange(server.port, request_bytes)
    assert reply.startswith(b"HTTP/1.1 " + status), reply
    assert header in reply


def test_handshake_headers_subprotocol_and_frames_right_after_the_request(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(upgrade_request(extra="Sec-WebSocket-Protocol: v2, chat\r\n") + frame(b"early"))
        data = b""
        while b"early" not in data:
            data += sock.recv(4096)
        head = data.split(b"\r\n\r\n")[0].decode()
        assert head.startswith("HTTP/1.1 101 Switching Protocols")
        assert f"Sec-WebSocket-Accept: {accept_key(KEY)}" in head
        assert "Sec-WebSocket-Protocol: chat" in head  # the server's order decides
        assert data.endswith(b"\x81\x05early")


# -- interop --------------------------------------------------------------------------------------
def test_websockets_client_with_compression(server):
    async def main():
        async with websockets.connect(server.url(), subprotocols=["v2"]) as ws:
            assert ws.subprotocol == "v2"
            assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
            big = "x" * 50_000
            await ws.send(big)
            assert await ws.recv() == big
            await ws.send("cmd:compress " + "y" * 1000)
            assert await ws.recv() == "y" * 1000
            pong = await ws.ping()
            await asyncio.wait_for(pong, 5)
        assert ws.close_code == 1000

    run(main())


def test_aiohttp_client(server):
    async def main():
        async with aiohttp.ClientSession() as session, session.ws_connect(server.url(), compress=15) as ws:
            await ws.send_str("hello aiohttp")
            assert (await ws.receive()).data == "hello aiohttp"
            await ws.send_bytes(b"\x01\x02")
            assert (await ws.receive()).data == b"\x01\x02"
            await ws.close()
            assert ws.close_code == 1000

    run(main())


# -- push, broadcast, disconnect across workers ---------------------------------------------------
def test_push_broadcast_and_disconnect_cross_workers(server):
    async def main():
        a = await connect(server.url())
        b = await connect(server.url())
        ia, ib = await info(a), await info(b)
        assert ia["worker_id"] != ib["worker_id"]  # fd % 2: neighbours live in different workers
        remote = await info(a, ib["fd"])
        assert remote["established"] and remote["exist"] and remote["status"] == 2
        assert {ia["fd"], ib["fd"]} <= set(remote["connections"])
        await a.send(f"cmd:push {ib['fd']} over there")
        assert await a.recv() == "pushed True"
        assert await b.recv() == "over there"
        await b.send("cmd:broadcast hi all")
        assert await a.recv() == f"Client-{ib['fd']}: hi all"
        assert await b.recv() == f"Client-{ib['fd']}: hi all"
        await a.send(f"cmd:disconnect {ib['fd']} 4001 bye now")
        with pytest.raises(ConnectionClosed) as closed:
            await b.recv()
        assert (closed.value.code, closed.value.reason) == (4001, "bye now")
        for _ in range(100):  # the row goes when the client has closed TCP too
            gone = await info(a, ib["fd"])
            if not gone["exist"]:
                break
            await asyncio.sleep(0.02)
        assert not gone["established"] and not gone["exist"]
        await a.send("cmd:push 999999 nobody")
        assert await a.recv() == "pushed False"
        await a.close()

    run(main())


def test_open_runs_before_the_client_reads_the_101(server):
    """A client that has its 101 is in the member list ``open`` keeps: a broadcast another
    connection (on the other worker) makes right away reaches it."""

    async def main():
        async with (
            await connect(server.url("/"), compression=False) as first,
            await connect(server.url("/?slow_open=1"), compression=False) as second,
        ):
            await first.send("cmd:members")
            members = json.loads(await first.recv())
            me, other = await info(second), await info(first)
            assert me["worker_id"] != other["worker_id"], "the two connections share a worker"
            assert me["fd"] in members, (me["fd"], members)

    run(main())


def test_push_to_a_plain_http_connection_is_refused(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")  # body pending

        async def main():
            async with await connect(server.url()) as ws:
                me = await info(ws)
                others = [fd for fd in me["connections"] if fd != me["fd"]]
                assert others
                other = await info(ws, others[-1])
                assert other["exist"] and not other["established"] and other["status"] == 0
                await ws.send(f"cmd:push {others[-1]} x")
                assert await ws.recv() == "pushed False"

        run(main())


# -- Autobahn groups over a raw socket -----------------------------------------------------------
def test_framing_fragmented_message_with_interleaved_ping(server):
    client = RawClient(server.port)
    client.send(frame(b"Hel", 1, fin=False) + frame(b"ping!", 9) + frame(b"lo ", 0, fin=False))
    assert client.recv_frame() == (0x8A, b"ping!")
    client.send(frame("wörld".encode(), 0))
    assert client.recv_text() == "Hello wörld"
    client.send(frame(b"", 1))
    assert client.recv_text() == ""
    client.close()


def test_frames_of_one_read_are_answered_in_order_then_the_close_completes(server):
    client = RawClient(server.port)
    client.send(
        frame(b"first")
        + frame(b"ping!", 9)
        + frame(b"\x00\x01", 2)
        + frame("späť".encode())
        + frame(struct.pack("!H", 1000) + b"done", opcode=8)
        + frame(b"after close")
    )
    assert client.recv_text() == "first"
    assert client.recv_frame() == (0x8A, b"ping!")
    assert client.recv_frame() == (0x82, b"\x00\x01")
    assert client.recv_text() == "späť"
    assert client.expect_close() == (1000, "done")
    client.close()


# Autobahn groups: 1 framing, 2 pings/pongs, 3 reserved bits, 4 opcodes, 5 fragmentation,
# 6 UTF-8 handling, 7 close handling, 9 limits/performance, 12/13 compression.
VIOLATIONS = {
    "1-framing-unmasked": (frame(b"x", mask=False), 1002),
    "2-ping-fragmented": (frame(b"p", opcode=9, fin=False), 1002),
    "2-ping-over-125-bytes": (frame(b"p" * 126, opcode=9), 1002),
    "3-rsv2-without-extension": (frame(b"x", rsv=2), 1002),
    "3-rsv1-without-extension-negotiated": (frame(b"x", rsv=4), 1002),
    "4-reserved-data-opcode": (frame(b"x", opcode=3), 1002),
    "4-reserved-control-opcode": (frame(b"x", opcode=0xB), 1002),
    "5-continuation-without-message": (frame(b"x", opcode=0), 1002),
    "5-new-message-inside-fragmented": (frame(b"a", fin=False) + frame(b"b"), 1002),
    "6-invalid-utf8": (frame(b"\xff\xfe"), 1007),
    "6-invalid-utf8-across-fragments": (frame(b"a\xf0\x9f", fin=False) + frame(b"\x28", opcode=0), 1007),
    "7-close-reason-not-utf8": (frame(b"\x03\xe8" + b"\xff", opcode=8), 1007),
    "7-close-code-1005-sent": (frame(b"\x03\xed", opcode=8), 1002),
    "7-close-one-byte-payload": (frame(b"\x03", opcode=8), 1002),
    "9-message-over-limit": (frame(b"x" * (64 * 1024 + 1), opcode=2), 1009),
    "9-fragmented-message-over-limit": (frame(b"x" * 40_000, 2, fin=False) + frame(b"x" * 40_000, 0), 1009),
}


@pytest.mark.parametrize(("bad", "code"), list(VIOLATIONS.values()), ids=list(VIOLATIONS))
def test_protocol_violations_close_with_their_code(server, bad, code):
    client = RawClient(server.port)
    client.send(bad)
    assert client.expect_close()[0] == code
    client.close()


def _deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


@pytest.mark.parametrize(
    ("payload", "code"),
    [(b"\xff\xff\xff\xff", 1002), (_deflated(b"\0" * (64 * 1024 + 1)), 1009)],
    ids=["12-corrupt-deflate-data", "13-deflate-bomb-over-limit"],
)
def test_compression_violations(server, payload, code):
    client = RawClient(server.port, extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
    assert b"permessage-deflate" in client.head
    client.send(frame(_deflated(b"fine"), rsv=4))
    assert client.recv_text() == "fine"
    client.send(frame(payload, opcode=2, rsv=4))
    assert client.expect_close()[0] == code
    client.close()


def test_close_handshake_echoes_code_and_reason(server):
    client = RawClient(server.port)
    client.send(frame(struct.pack("!H", 4321) + b"see you", opcode=8))
    assert client.expect_close() == (4321, "see you")
    client.close()
    client = RawClient(server.port)
    client.send(frame(b"", opcode=8))
    assert client.expect_close() == (1005, "")
    client.close()


def test_peer_vanishing_fires_close_once(server):
    client = RawClient(server.port)
    client.send(frame(b"cmd:info"))
    fd = json.loads(client.recv_text())["fd"]
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # reset, no close frame
    wait_for(lambda: f"close {fd} " in server.output(), 5)
    time.sleep(0.2)
    assert server.output().count(f"close {fd} ") == 1


def test_crashing_message_callback_is_logged_and_the_connection_lives_on(server):
    async def main():
        async with await connect(server.url()) as ws:
            await ws.send("cmd:raise")
            await ws.send("still here")
            assert await ws.recv() == "still here"

    run(main())
    assert "message handler failure for the test" in server.output()


@pytest.mark.parametrize("before", [b"", frame(b"batched with the flood")], ids=["alone", "in-a-batch"])
def test_client_that_does_not_read_makes_push_fail_without_harm(server, before):
    slow = RawClient(server.port)
    slow.send(frame(b"cmd:info"))
    fd = json.loads(slow.recv_text())["fd"]
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.send(before + frame(b"cmd:flood"))  # and never read again
    line = server.process.wait_output(f"flood {fd} ")
    count, more = line.split(f"flood {fd} ")[1].split()[:2]
    assert 1 < int(count) < 2000 and more == "False"  # whole frames refused once the buffer is full

    async def main():
        async with await connect(server.url(), compression=False) as ws:
            await ws.send("others are served")
            assert await ws.recv() == "others are served"
            assert (await info(ws, fd))["established"]

    run(main())
    slow.close()


def test_compressed_messages_from_the_client(server):
    async def main():
        async with await connect(server.url(), compression=True) as ws:
            assert ws.deflate is not None
            for text in ("a" * 3000, "b" * 10, "ü" * 500):
                await ws.send(text)
                assert await ws.recv() == text

    run(main())


# -- settings, handshake callback, heartbeat -------------------------------------------------------
@pytest.fixture(scope="module")
def custom_server(tmp_path_factory):
    settings = {
        "open_websocket_ping_frame": True,
        "open_websocket_pong_frame": True,
        "open_websocket_close_frame": True,
        "heartbeat_check_interval": 1,
        "heartbeat_idle_time": 3,  # last_time counts whole seconds: keep a margin over the interval
    }
    srv = WsServer(tmp_path_factory.mktemp("ws_custom"), settings, "handshake,request").start()
    yield srv
    srv.stop()


def test_handshake_callback_accepts_and_refuses(custom_server):
    async def main():
        with pytest.raises(HandshakeError) as refused:
            await connect(custom_server.url())
        assert refused.value.status == 403
        async with await connect(
            custom_server.url(), headers={"X-Token": "secret"}, subprotocols=["chat"]
        ) as ws:
            assert ws.subprotocol == "chat"
            assert ws.response_headers["x-handshake"] == "custom"
            await ws.send("through")
            assert await ws.recv() == "through"

    run(main())


def test_crashing_handshake_callback_gives_500_and_close(custom_server):
    async def main():
        with pytest.raises(HandshakeError) as failed:
            await connect(custom_server.url(), headers={"X-Token": "crash"})
        assert failed.value.status == 500

    run(main())
    assert "handshake handler failure for the test" in custom_server.output()


def test_request_callback_serves_plain_http_on_the_same_port(custom_server):
    reply = http_exchange(custom_server.port, b"GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"plain http /page")


def test_control_frames_surface_to_message_when_asked(custom_server):
    client = RawClient(custom_server.port, extra="X-Token: secret\r\n")
    client.send(frame(b"hi", opcode=9))
    assert client.recv_text() == "control 9 None hi"  # and no automatic pong
    client.send(frame(b"ho", opcode=10))
    assert client.recv_text() == "control 10 None ho"
    client.send(frame(struct.pack("!H", 1000) + b"done", opcode=8))
    assert client.recv_text() == "control 8 1000 done"
    assert client.expect_close() == (4000, "app answer")


def test_heartbeat_pings_idle_clients_and_closes_silent_ones(custom_server):
    def silent_client() -> None:
        silent = RawClient(custom_server.port, extra="X-Token: secret\r\n")
        assert silent.recv_frame(timeout=3)[0] == 0x89  # the server's ping, unanswered
        deadline = time.monotonic() + 6
        with pytest.raises(ConnectionError):
            while time.monotonic() < deadline:  # more pings, then the server gives up
                assert silent.recv_frame(timeout=6)[0] == 0x89
        silent.close()

    async def main():
        async with await connect(custom_server.url(), headers={"X-Token": "secret"}) as live:
            await asyncio.to_thread(silent_client)  # meanwhile our client answers the pings
            await live.send("alive")
            while (message := await live.recv()) != "alive":
                assert message == "control 10 None "  # the pongs surface (open_websocket_pong_frame)

    run(main())


# -- reload (PROCESS mode): connections move to the new workers -----------------------------------
def test_reload_hands_plain_connections_over_and_asks_compressed_ones_to_reconnect(server):
    async def main():
        plain = await connect(server.url(), compression=False)
        compressed = await connect(server.url(), compression=True)
        assert compressed.deflate is not None
        before = await info(plain)
        client = RawClient(server.port)
        client.send(frame(b"cmd:info"))
        raw_fd = json.loads(client.recv_text())["fd"]
        split = frame(b"split across workers")
        client.send(split[:-3])  # an incomplete frame: its bytes go along with the connection
        await asyncio.sleep(0.2)
        await plain.send("cmd:reload")
        with pytest.raises(ConnectionClosed) as closed:
            await compressed.recv()
        assert closed.value.code == 1012  # its compression context cannot move: come back, please
        for _ in range(200):
            after = await info(plain)
            if after["pid"] != before["pid"]:
                break
            await asyncio.sleep(0.05)
        assert after["pid"] != before["pid"] and after["fd"] == before["fd"] and after["established"]
        await plain.send("still talking")
        assert await plain.recv() == "still talking"
        client.send(split[-3:])
        assert await asyncio.to_thread(client.recv_text) == "split across workers"
        client.close()
        await plain.close()
        return raw_fd

    raw_fd = run(main())
    assert server.output().count(f"open {raw_fd} ") == 1  # no second open event after the move


# -- TLS and compression without context takeover ---------------------------------------------------
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_wss_with_compression_without_context_takeover(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.create_default_context(cafile=str(cert))
    settings = {"ssl_cert_file": str(cert), "ssl_key_file": str(key)}
    srv = WsServer(tmp_path, settings, "nocontext", tls=context).start()

    async def main():
        url = f"wss://127.0.0.1:{srv.port}/?greet=1"
        async with await connect(url, ssl=context) as ours:
            assert ours.deflate.server_no_context_takeover and ours.deflate.client_no_context_takeover
            assert await ours.recv() == "Hello, welcome\n"
            for text in ("z" * 5000, "z" * 5000):  # the same text twice: no shared context
                await ours.send(text)
                assert await ours.recv() == text
        async with websockets.connect(url, ssl=context) as theirs:
            extensions = theirs.response.headers["Sec-WebSocket-Extensions"]
            assert "server_no_context_takeover" in extensions and "client_no_context_takeover" in extensions
            await theirs.recv()
            await theirs.send("cmd:compress " + "q" * 3000)
            assert await theirs.recv() == "q" * 3000

    try:
        run(main())
    finally:
        srv.stop()


# -- configuration ---------------------------------------------------------------------------------
def test_settings_are_checked_and_a_message_callback_is_required():
    from pyswoole.server.settings import SettingsError
    from pyswoole.websocket import DeflateParams, Server

    ws = Server("127.0.0.1", 0)
    ws.set(
        {"websocket_compression": DeflateParams(client_max_window_bits=10), "websocket_subprotocol": "chat"}
    )
    with pytest.raises(SettingsError):
        ws.set({"websocket_compression": "yes"})
    with pytest.raises(SettingsError):
        ws.set({"websocket_subprotocol": ["chat", 3]})
    with pytest.raises(RuntimeError, match="'message' callback"):
        ws.start()


def test_max_request_counts_messages_and_the_connection_survives_the_recycling(tmp_path):
    srv = WsServer(tmp_path, {"worker_num": 1, "max_request": 3, "max_request_grace": 0}).start()

    async def main():
        async with await connect(srv.url(), compression=False) as ws:
            first = await info(ws)
            for n in range(6):
                await ws.send(f"message {n}")
                assert await ws.recv() == f"message {n}"
            for _ in range(100):
                later = await info(ws)
                if later["pid"] != first["pid"]:
                    break
                await asyncio.sleep(0.05)
            assert later["pid"] != first["pid"] and later["established"]

    try:
        run(main())
    finally:
        srv.stop()
    assert srv.output().count("open ") == 1
