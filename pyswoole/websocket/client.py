"""Coroutine WebSocket client on asyncio (and uvloop), built on the sans-IO codec.

ws = await connect("ws://127.0.0.1:9502/chat")
await ws.send("hello")
reply = await ws.recv()          # str for text, bytes for binary
async for message in ws: ...     # ends on a normal close
await ws.close()
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import ssl as ssl_module
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

import httptools

from pyswoole.protocol.framing import DEFAULT_MAX_LENGTH
from pyswoole.protocol.websocket import (
    CLOSE_ABNORMAL,
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_STATUS_ERROR,
    FLAG_COMPRESS,
    FLAG_FIN,
    OPCODE_BINARY,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    CloseFrame,
    DeflateParams,
    HandshakeError,
    ProtocolError,
    WebSocketCodec,
    client_request,
    new_key,
    validate_response,
)

logger = logging.getLogger("pyswoole")

#: Largest handshake response accepted (status line and headers).
MAX_RESPONSE_HEAD = 64 * 1024


class ConnectionClosed(Exception):
    """The connection is closed; ``code`` and ``reason`` say how (1006: lost without a close frame)."""

    def __init__(self, code: int, reason: str = ""):
        super().__init__(f"WebSocket connection closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason

    @property
    def ok(self) -> bool:
        """A normal closure (1000, 1001, or a close frame without a code)."""
        return self.code in (CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_STATUS_ERROR)


class _ResponseHead:
    """httptools callbacks collecting the handshake response's headers."""

    __slots__ = ("complete", "headers")

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.complete = True


class ClientConnection(asyncio.Protocol):
    """One client connection; made by ``connect()``."""

    def __init__(
        self,
        request: bytes,
        key: str,
        subprotocols: Sequence[str],
        compression: DeflateParams | None,
        max_message_size: int,
        max_queue: int,
        timeout: float,
    ):
        self._loop = asyncio.get_running_loop()
        self._request = request
        self._key = key
        self._subprotocols = subprotocols
        self._compression = compression
        self._max_message_size = max_message_size
        self._max_queue = max_queue
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._head: _ResponseHead | None = _ResponseHead()
        self._parser = httptools.HttpResponseParser(self._head)
        self._head_size = 0
        self._codec: WebSocketCodec | None = None
        self._send_flags = FLAG_FIN
        self._messages: collections.deque[str | bytes] = collections.deque()
        self._reading_paused = False
        self._recv_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._pings: dict[bytes, tuple[asyncio.Future[float], float]] = {}
        self._close_timer: asyncio.TimerHandle | None = None
        self.handshake: asyncio.Future[None] = self._loop.create_future()
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self.subprotocol: str | None = None
        self.deflate: DeflateParams | None = None
        self.response_headers: dict[str, str] = {}
        self.close_code: int | None = None
        self.close_reason = ""

    # ---- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        transport.write(self._request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self._codec is None:
            data = self._handshake_data(data)
            if not data:
                return
        for event in self._codec.feed(data):  # type: ignore[union-attr]
            if isinstance(event, ProtocolError):
                self._fail(event)
                return
            opcode = event.opcode
            if opcode <= OPCODE_BINARY:
                self._messages.append(event.data)
                if len(self._messages) >= self._max_queue and not self._reading_paused:
                    self._reading_paused = True
                    self._transport.pause_reading()  # type: ignore[union-attr]
                self._wake_receiver()
            elif opcode == OPCODE_PING:
                self._transport.write(self._codec.encode(event.data, OPCODE_PONG))  # type: ignore[union-attr,arg-type]
            elif opcode == OPCODE_PONG:
                self._pong_received(event.data)  # type: ignore[arg-type]
            else:
                self._close_received(event)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code = CLOSE_ABNORMAL
        if self._close_timer is not None:
            self._close_timer.cancel()
        closed = self._closed_error()
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(f"connection lost during the handshake: {exc}"))
        for future, _ in self._pings.values():
            if not future.done():
                future.set_exception(closed)
        self._pings.clear()
        self._wake_receiver()
        self._wake_writer()
        self.lost.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    # ---- public API ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the TCP connection is gone."""
        return self.lost.done()

    async def send(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message."""
        codec = self._codec
        if codec is None or codec.close_sent or codec.close_received or self.closed:
            raise self._closed_error()
        opcode = OPCODE_TEXT if isinstance(data, str) else OPCODE_BINARY
        self._transport.write(codec.encode(data, opcode, self._send_flags))  # type: ignore[union-attr]
        if self._write_paused:
            await self._drain()

    async def recv(self) -> str | bytes:
        """The next message; raises ``ConnectionClosed`` once the connection is closed."""
        while not self._messages:
            if self.close_code is not None:
                raise self._closed_error()
            if self._recv_waiter is not None:
                raise RuntimeError("recv() is already being awaited by another task")
            self._recv_waiter = self._loop.create_future()
            try:
                await self._recv_waiter
            finally:
                self._recv_waiter = None
        message = self._messages.popleft()
        if self._reading_paused and len(self._messages) <= self._max_queue // 4:
            self._reading_paused = False
            self._transport.resume_reading()  # type: ignore[union-attr]
        return message

    async def ping(self, data: bytes | None = None) -> float:
        """Send a ping; return the seconds until its pong arrived."""
        codec = self._codec
        if codec is None or codec.close_sent or codec.close_received or self.closed:
            raise self._closed_error()
        payload = os.urandom(4) if data is None else data
        if payload in self._pings:
            raise ValueError("a ping with this payload is already waiting for its pong")
        future: asyncio.Future[float] = self._loop.create_future()
        self._pings[payload] = (future, self._loop.time())
        self._transport.write(codec.encode(payload, OPCODE_PING))  # type: ignore[union-attr]
        return await future

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close handshake: send a close frame, wait (``timeout``) for the server to close."""
        codec = self._codec
        if not self.closed and codec is not None:
            frame = codec.close(code, reason)
            if frame:
                self._transport.write(frame)  # type: ignore[union-attr]
                if self.close_code is None:
                    self.close_code, self.close_reason = code, reason
        if not self.closed:
            try:
                async with asyncio.timeout(self._timeout):
                    await asyncio.shield(self.lost)
            except TimeoutError:
                self._transport.abort()  # type: ignore[union-attr]
                await self.lost

    def __aiter__(self) -> ClientConnection:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.recv()
        except ConnectionClosed as exc:
            if exc.ok:
                raise StopAsyncIteration from None
            raise

    async def __aenter__(self) -> ClientConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ---- internals -----------------------------------------------------------------------

    def _handshake_data(self, data: bytes) -> bytes:
        """Feed the handshake response; return the bytes after it once it is accepted."""
        self._head_size += len(data)
        rest = b""
        try:
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserUpgrade as upgrade:
                rest = data[upgrade.args[0] :]
            except httptools.HttpParserError as exc:
                raise HandshakeError(f"invalid HTTP response: {exc}") from None
            head = self._head
            if not head.complete:  # type: ignore[union-attr]
                if self._head_size > MAX_RESPONSE_HEAD:
                    raise HandshakeError("handshake response too large")
                return b""
            self.response_headers = head.headers  # type: ignore[union-attr]
            self.subprotocol, self.deflate = validate_response(
                self._parser.get_status_code(),
                head.headers,
                self._key,
                self._subprotocols,
                self._compression,  # type: ignore[union-attr]
            )
        except HandshakeError as exc:
            self.handshake.set_exception(exc)
            self._transport.abort()  # type: ignore[union-attr]
            return b""
        self._head = None
        self._codec = WebSocketCodec(
            client=True, max_message_size=self._max_message_size, deflate=self.deflate
        )
        if self.deflate is not None:
            self._send_flags = FLAG_FIN | FLAG_COMPRESS
        self.handshake.set_result(None)
        return rest

    def _fail(self, error: ProtocolError) -> None:
        logger.warning("websocket client: closing the connection: %s", error)
        self._transport.write(self._codec.close(error.code, error.reason))  # type: ignore[union-attr]
        self.close_code, self.close_reason = error.code, error.reason
        self._transport.close()  # type: ignore[union-attr]
        self._wake_receiver()

    def _close_received(self, frame: CloseFrame) -> None:
        self._transport.write(self._codec.close(frame.code))  # type: ignore[union-attr]
        self.close_code, self.close_reason = frame.code, frame.reason
        # The server closes TCP first (RFC 6455 7.1.1); do not wait for it forever.
        self._close_timer = self._loop.call_later(self._timeout, self._transport.abort)  # type: ignore[union-attr]
        self._wake_receiver()

    def _pong_received(self, payload: bytes) -> None:
        if payload not in self._pings:
            return
        now = self._loop.time()
        # A pong answers its ping and every earlier one (RFC 6455 5.5.3).
        while self._pings:
            key, (future, sent) = next(iter(self._pings.items()))
            del self._pings[key]
            if not future.done():
                future.set_result(now - sent)
            if key == payload:
                break

    def _closed_error(self) -> ConnectionClosed:
        return ConnectionClosed(self.close_code or CLOSE_ABNORMAL, self.close_reason)

    def _wake_receiver(self) -> None:
        if self._recv_waiter is not None and not self._recv_waiter.done():
            self._recv_waiter.set_result(None)

    def _wake_writer(self) -> None:
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    async def _drain(self) -> None:
        while self._write_paused and not self.closed:
            self._drain_waiter = self._loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None


async def connect(
    url: str,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    subprotocols: Sequence[str] | None = None,
    compression: bool | DeflateParams = True,
    timeout: float = 10.0,
    *,
    max_message_size: int = DEFAULT_MAX_LENGTH,
    max_queue: int = 64,
    ssl: ssl_module.SSLContext | None = None,
) -> ClientConnection:
    """Open a WebSocket connection to ``url`` (``ws://`` or ``wss://``).

    ``compression``: offer permessage-deflate (``True``: default parameters; a ``DeflateParams``
    to choose them; ``False``: no compression). ``timeout`` bounds the connection with its
    handshake, and the close handshake. ``max_message_size`` bounds incoming messages (1009
    beyond); at ``max_queue`` unread messages the client stops reading from the socket.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a ws:// or wss:// URL: {url}")
    secure = parts.scheme == "wss"
    default_port = 443 if secure else 80
    port = parts.port or default_port
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    host_header = host if port == default_port else f"{host}:{port}"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    extra = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
    offer = DeflateParams() if compression is True else (compression or None)
    key = new_key()
    request = client_request(host_header, resource, key, subprotocols or (), offer, extra)
    if secure and ssl is None:
        ssl = ssl_module.create_default_context()
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        transport, connection = await loop.create_connection(
            lambda: ClientConnection(
                request, key, subprotocols or (), offer, max_message_size, max_queue, timeout
            ),
            parts.hostname,
            port,
            ssl=ssl if secure else None,
        )
        try:
            await connection.handshake
        except BaseException:
            transport.abort()
            raise
    return connection
