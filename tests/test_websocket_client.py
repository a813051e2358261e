"""The coroutine WebSocket client against real servers on free ports, in-process.

Interop peer: the ``websockets`` library's asyncio server. Misbehaving servers (masked frames,
invalid UTF-8, oversized messages, silence, vanishing) are raw asyncio servers that answer the
handshake with the codec's helpers and then write whatever bytes the test needs.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus

import pytest
import uvloop
from websockets.asyncio.server import ServerConnection, serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Request
from wsproto.extensions import PerMessageDeflate as WsprotoDeflate

from pyswoole.protocol.websocket import WebSocketCodec, server_handshake
from pyswoole.websocket import (
    CLOSE_ABNORMAL,
    CLOSE_MESSAGE_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_PROTOCOL_ERROR,
    ConnectionClosed,
    DeflateParams,
    HandshakeError,
    connect,
)

TEST_TIMEOUT = 10.0


def run(coroutine: Awaitable[None], loop: str = "uvloop") -> None:
    """Run one test body on uvloop (or asyncio's own loop), bounded in time."""

    async def bounded() -> None:
        async with asyncio.timeout(TEST_TIMEOUT):
            await coroutine

    if loop == "uvloop":
        uvloop.run(bounded())
    else:
        asyncio.run(bounded())


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


@asynccontextmanager
async def websockets_server(handler: Callable = echo, **options) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0, **options) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


@asynccontextmanager
async def raw_server(
    after_handshake: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
):
    """A server that accepts the upgrade with the codec's helpers, then runs ``after_handshake``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")[1:-2]
            headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines)}
            writer.write(server_handshake("GET", headers).response())
            await after_handshake(reader, writer)
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


async def read_close_code(reader: asyncio.StreamReader) -> int:
    """The code of the close frame the client sends (parsed as a server would)."""
    codec = WebSocketCodec()
    while True:
        data = await reader.read(4096)
        assert data, "connection closed without a close frame"
        for event in codec.feed(data):
            if event.opcode == 8:
                return event.code


# ---- interop with the websockets server ------------------------------------------------------


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("compression", [True, False])
def test_echo_text_binary_and_large_messages(loop: str, compression: bool) -> None:
    async def body() -> None:
        async with websockets_server() as url, await connect(url, compression=compression) as ws:
            assert (ws.deflate is not None) is compression
            for message in [
                "hello",
                "ünïcödé ✓ 𝄞",
                "",
                b"\x00\xff" * 10,
                b"",
                "x" * 70_000,
                bytes(1_000_000),
            ]:
                await ws.send(message)
                assert await ws.recv() == message

    run(body(), loop)


def test_negotiated_compression_parameters_are_honoured() -> None:
    factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=9,
    )

    async def body() -> None:
        async with websockets_server(compression=None, extensions=[factory]) as url, await connect(url) as ws:
            assert ws.deflate == DeflateParams(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                server_max_window_bits=10,
                client_max_window_bits=9,
            )
            for i in range(30):
                text = f"{i} " + "compressible text " * i
                await ws.send(text)
                assert await ws.recv() == text

    run(body())


def test_no_compression_offered_when_disabled() -> None:
    seen: list[str | None] = []

    async def record(connection: ServerConnection, request) -> None:
        seen.append(request.headers.get("Sec-WebSocket-Extensions"))

    async def body() -> None:
        async with (
            websockets_server(process_request=record) as url,
            await connect(url, compression=False) as ws,
        ):
            assert ws.deflate is None
            assert "sec-websocket-extensions" not in ws.response_headers

    run(body())
    assert seen == [None]


def test_subprotocols_and_extra_headers() -> None:
    seen: dict[str, str | None] = {}

    async def handler(ws: ServerConnection) -> None:
        seen["subprotocol"] = ws.subprotocol
        seen["token"] = ws.request.headers.get("X-Token")
        seen["path"] = ws.request.path
        await ws.send("ready")

    async def body() -> None:
        async with websockets_server(handler, subprotocols=["chat"]) as url:
            ws = await connect(
                url + "room?id=7", headers={"X-Token": "secret"}, subprotocols=["superchat", "chat"]
            )
            assert ws.subprotocol == "chat"
            assert await ws.recv() == "ready"
            await ws.close()

    run(body())
    assert seen == {"subprotocol": "chat", "token": "secret", "path": "/room?id=7"}


def test_fragmented_message_from_the_server_is_assembled() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(["frag", "ment", "ed ✓"])
        await ws.send([b"\x01", b"\x02"])
        await ws.wait_closed()

    async def body() -> None:
        async with websockets_server(handler) as url, await connect(url) as ws:
            assert await ws.recv() == "fragmented ✓"
            assert await ws.recv() == b"\x01\x02"

    run(body())


def test_ping_from_client_and_from_server() -> None:
    async def handler(ws: ServerConnection) -> None:
        pong = await ws.ping(b"server-ping")
        await asyncio.wait_for(pong, 5)
        await ws.send("pong received")
        await ws.wait_closed()

    async def body() -> None:
        async with websockets_server(handler) as url, await connect(url) as ws:
            assert await ws.recv() == "pong received"
            latency = await ws.ping()
            assert 0 <= latency < 5
            assert await ws.ping(b"custom") >= 0

    run(body())


def test_client_close_handshake_reaches_the_server() -> None:
    closes: list[tuple[int | None, str | None]] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()
        closes.append((ws.close_code, ws.close_reason))

    async def body() -> None:
        async with websockets_server(handler) as url:
            ws = await connect(url)
            await ws.close(4000, "bye")
            assert ws.closed and ws.close_code == 4000
            with pytest.raises(ConnectionClosed):
                await ws.send("too late")
            with pytest.raises(ConnectionClosed):
                await ws.recv()

    run(body())
    assert closes == [(4000, "bye")]


def test_server_close_ends_iteration_and_echoes_the_code() -> None:
    closes: list[int | None] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.send("one")
        await ws.send("two")
        await ws.close(1001, "restarting")
        closes.append(ws.close_code)

    async def body() -> None:
        async with websockets_server(handler) as url:
            ws = await connect(url)
            assert [message async for message in ws] == ["one", "two"]
            assert (ws.close_code, ws.close_reason) == (1001, "restarting")
            await asyncio.wait_for(ws.lost, 5)

    run(body())
    assert closes == [1001]


def test_server_close_with_an_error_code_raises_from_iteration() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.close(4001, "custom failure")

    async def body() -> None:
        async with websockets_server(handler) as url:
            ws = await connect(url)
            with pytest.raises(ConnectionClosed) as caught:
                async for _ in ws:
                    pass
            assert (caught.value.code, caught.value.reason, caught.value.ok) == (
                4001,
                "custom failure",
                False,
            )

    run(body())


def test_rejected_handshake_raises_with_the_status() -> None:
    async def reject(connection: ServerConnection, request):
        return connection.respond(HTTPStatus.FORBIDDEN, "go away\n")

    async def body() -> None:
        async with websockets_server(process_request=reject) as url:
            with pytest.raises(HandshakeError) as caught:
                await connect(url)
            assert caught.value.status == 403

    run(body())


def test_slow_reader_gets_every_message_in_order() -> None:
    async def handler(ws: ServerConnection) -> None:
        for i in range(300):
            await ws.send(f"message {i}")
        await ws.close()

    async def body() -> None:
        async with websockets_server(handler) as url:
            ws = await connect(url, max_queue=4)
            received = []
            async for message in ws:
                received.append(message)
                if len(received) % 50 == 0:
                    await asyncio.sleep(0.01)
            assert received == [f"message {i}" for i in range(300)]

    run(body())


def test_send_waits_while_the_server_does_not_read() -> None:
    total = 8 * 1_000_000

    async def late_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.5)
        codec, received = WebSocketCodec(max_message_size=total), 0
        while received < total:
            received += sum(len(frame.data) for frame in codec.feed(await reader.read(1 << 20)))
        writer.write(codec.encode(str(received)))
        await read_close_code(reader)

    async def body() -> None:
        async with raw_server(late_reader) as url:
            ws = await connect(url, compression=False)
            loop = asyncio.get_running_loop()
            start = loop.time()
            for _ in range(8):
                await ws.send(bytes(1_000_000))
                assert ws._transport.get_write_buffer_size() <= 100_000  # at most the high-water mark
            assert loop.time() - start > 0.3  # held back until the server read
            assert await ws.recv() == str(total)
            await ws.close()

    run(body())


@pytest.fixture
def tls_context(tmp_path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) for a throwaway self-signed certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    options = "-x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost"
    subject = "subjectAltName=DNS:localhost,IP:127.0.0.1"
    subprocess.run(
        ["openssl", "req", *options.split(), "-addext", subject, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


def test_wss_with_certificate_verification(tls_context: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_context, client_context = tls_context

    async def body() -> None:
        async with serve(echo, "127.0.0.1", 0, ssl=server_context) as server:
            url = f"wss://localhost:{server.sockets[0].getsockname()[1]}/"
            with pytest.raises(ssl.SSLCertVerificationError):
                await connect(url)  # the system's trust store does not know the certificate
            async with await connect(url, ssl=client_context) as ws:
                await ws.send("over TLS")
                assert await ws.recv() == "over TLS"

    run(body())


# ---- interop with a wsproto server -----------------------------------------------------------


@asynccontextmanager
async def wsproto_echo_server() -> AsyncIterator[str]:
    """An echo server driving wsproto's sans-IO connection (permessage-deflate on)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = WSConnection(ConnectionType.SERVER)
        try:
            while data := await reader.read(65536):
                connection.receive_data(data)
                for event in connection.events():
                    if isinstance(event, Request):
                        reply = AcceptConnection(subprotocol="v2", extensions=[WsprotoDeflate()])
                    elif isinstance(event, Message):
                        reply = event  # echo each piece; wsproto sends unfinished ones as fragments
                    elif isinstance(event, CloseConnection):
                        writer.write(connection.send(event.response()))
                        return  # the server closes TCP first
                    else:
                        continue
                    writer.write(connection.send(reply))
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


def test_echo_through_a_wsproto_server() -> None:
    async def body() -> None:
        async with wsproto_echo_server() as url, await connect(url, subprotocols=["v1", "v2"]) as ws:
            assert ws.subprotocol == "v2"
            assert ws.deflate is not None
            for message in ["hello", "ü" * 5000, b"\x00" * 100_000, "again " * 100]:
                await ws.send(message)
                assert await ws.recv() == message
            await ws.close(1000, "done")
            assert ws.close_code == 1000

    run(body())


# ---- misbehaving servers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x81\x82abcd" + bytes(a ^ b for a, b in zip(b"hi", b"ab", strict=True)), CLOSE_PROTOCOL_ERROR),
        (b"\x81\x02\xff\xfe", CLOSE_MESSAGE_ERROR),
        (b"\x83\x00", CLOSE_PROTOCOL_ERROR),
        (b"\x82\x7e" + struct.pack("!H", 2000), CLOSE_MESSAGE_TOO_BIG),
    ],
    ids=["masked-frame", "invalid-utf8", "reserved-opcode", "too-big"],
)
def test_protocol_errors_close_with_the_right_code(frame: bytes, code: int) -> None:
    codes: list[int] = []

    async def misbehave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x81\x02ok" + frame)
        codes.append(await read_close_code(reader))

    async def body() -> None:
        async with raw_server(misbehave) as url:
            ws = await connect(url, max_message_size=1000)
            assert await ws.recv() == "ok"
            with pytest.raises(ConnectionClosed) as caught:
                await ws.recv()
            assert caught.value.code == code
            await asyncio.wait_for(ws.lost, 5)

    run(body())
    assert codes == [code]


def test_server_vanishing_without_close_frame() -> None:
    async def vanish(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x81\x05hello")
        await writer.drain()

    async def body() -> None:
        async with raw_server(vanish) as url:
            ws = await connect(url)
            assert await ws.recv() == "hello"
            with pytest.raises(ConnectionClosed) as caught:
                await ws.recv()
            assert caught.value.code == CLOSE_ABNORMAL
            with pytest.raises(ConnectionClosed):
                await ws.ping()

    run(body())


def test_silent_server_times_out_the_handshake() -> None:
    async def body() -> None:
        closed = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # returns at EOF, when the client gives up
            closed.set()
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            start = asyncio.get_running_loop().time()
            with pytest.raises(TimeoutError):
                await connect(f"ws://127.0.0.1:{port}/", timeout=0.3)
            assert asyncio.get_running_loop().time() - start < 2
            await asyncio.wait_for(closed.wait(), 5)

    run(body())


def test_server_that_never_closes_tcp_is_aborted_after_the_timeout() -> None:
    async def linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_close_code(reader)
        while await reader.read(4096):  # never answers the close frame; waits for the abort
            pass

    async def body() -> None:
        async with raw_server(linger) as url:
            ws = await connect(url, timeout=0.3)
            start = asyncio.get_running_loop().time()
            await ws.close()
            assert ws.closed
            assert asyncio.get_running_loop().time() - start < 2

    run(body())


def test_invalid_urls() -> None:
    async def body() -> None:
        for url in ["http://127.0.0.1/", "ws://", "127.0.0.1:80"]:
            with pytest.raises(ValueError):
                await connect(url)

    run(body())
