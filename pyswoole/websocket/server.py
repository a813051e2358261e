"""``pyswoole.websocket.Server``: the HTTP server whose connections switch to WebSocket framing.

A port speaks HTTP until a request asks for ``Upgrade: websocket``; ``WebSocketConnection`` then
answers the opening handshake (itself, or through the ``handshake`` callback) and feeds everything
after it to a ``WebSocketCodec``. Each completed message starts the ``message`` callback; pings
are answered, the close handshake is completed, and a peer that breaks the protocol gets the close
code the codec chose. The connection's state is published in the registry
(``websocket_status``), so ``push``, ``is_established`` and ``disconnect`` work from any worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pyswoole.coroutine import runner
from pyswoole.coroutine.runner import spawn
from pyswoole.http import server as http
from pyswoole.http.connection import FLUSH_SIZE, HttpConnection
from pyswoole.http.request import Request
from pyswoole.http.response import ENDED, Response
from pyswoole.protocol._websocket import pack, parse_frame
from pyswoole.protocol.http import simple_response
from pyswoole.protocol.websocket import (
    CLOSE_NORMAL,
    FLAG_COMPRESS,
    FLAG_FIN,
    OPCODE_CLOSE,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    CloseFrame,
    DeflateParams,
    Frame,
    HandshakeError,
    ProtocolError,
    WebSocketCodec,
    accept_deflate,
    close_payload,
    encode_frame,
    server_handshake,
)
from pyswoole.server.port import Port
from pyswoole.server.settings import BOOL, Setting
from pyswoole.server.worker import FD, MSG_SEND

if TYPE_CHECKING:
    from pyswoole.server.worker import Worker

log = logging.getLogger("pyswoole")

# websocket_status values in the registry (Swoole's WEBSOCKET_STATUS_*).
STATUS_NONE = 0
STATUS_HANDSHAKE = 1
STATUS_ACTIVE = 2
STATUS_CLOSING = 3

CLOSE_SERVICE_RESTART = 1012
#: How long a closing connection waits for the peer to close TCP before closing it anyway.
CLOSE_LINGER_SECONDS = 2.0

#: Swoole's answer to a plain HTTP request on a WebSocket server without a ``request`` callback.
BAD_REQUEST_PAGE = (
    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/html; charset=UTF-8\r\n"
    b"Cache-Control: must-revalidate,no-cache,no-store\r\nContent-Length: 83\r\n"
    b"Server: swoole-http-server\r\n\r\n"
    b"<html><body><h2>HTTP 400 Bad Request</h2><hr><i>Powered by Swoole</i></body></html>"
)


def _compression(value: Any) -> str | None:
    return None if isinstance(value, (bool, DeflateParams)) else "must be a bool or a DeflateParams"


def _subprotocols(value: Any) -> str | None:
    if isinstance(value, str) or (
        isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    ):
        return None
    return "must be a str or a list of str"


#: WebSocket settings (Swoole's names); all may differ per port.
WEBSOCKET_SETTINGS: dict[str, Setting] = {
    "open_websocket_protocol": Setting(BOOL, True, port=True),
    "websocket_compression": Setting((bool, DeflateParams), False, _compression, port=True),
    "websocket_subprotocol": Setting((str, list, tuple), None, _subprotocols, port=True),
    "open_websocket_close_frame": Setting(BOOL, False, port=True),
    "open_websocket_ping_frame": Setting(BOOL, False, port=True),
    "open_websocket_pong_frame": Setting(BOOL, False, port=True),
}


@dataclass(frozen=True)
class WebSocketOptions:
    """What one port's WebSocket connections need, computed once per port per worker."""

    on_open: Callable[..., Any] | None
    on_message: Callable[..., Any] | None
    on_handshake: Callable[..., Any] | None
    subprotocols: tuple[str, ...]
    compression: DeflateParams | None
    max_message_size: int
    close_frames: bool
    ping_frames: bool
    pong_frames: bool


def bad_request_page(request: Request, response: Response) -> None:
    """The default ``request`` handler of a WebSocket server: Swoole's 400 page, then close."""
    conn = request.conn
    assert conn is not None
    conn.write(BAD_REQUEST_PAGE)
    conn.flush()
    response.close()


class WebSocketConnection(HttpConnection):
    """An HTTP connection that may switch to WebSocket framing (then ``codec`` is set)."""

    __slots__ = ("batch", "batch_size", "codec", "half_closed", "handshake_response", "ws")

    def __init__(self, worker: Worker, port: Port, tls: bool = False):
        super().__init__(worker, port, tls)
        self.ws: WebSocketOptions = worker.server.websocket_options(port)  # type: ignore[attr-defined]
        self.codec: WebSocketCodec | None = None
        self.handshake_response: Response | None = None
        self.half_closed = False  # our side of TCP is shut down: nothing more can be written
        self.batch: list[bytes] | None = None  # frames sent while one read is handled, written together
        self.batch_size = 0

    # -- asyncio Protocol ------------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        if self.adopted and self.fd in self.worker.connections:
            # The master handed this connection over twice (released while the replacement worker
            # was starting, then again when the old worker exited): two descriptors of one socket
            # would split its bytes. Keep the first; closing a duplicate descriptor ends nothing.
            log.warning("connection %d handed over twice: duplicate dropped", self.fd)
            self.fd = 0
            transport.abort()
            return
        super().connection_made(transport)
        if self.adopted and self.fd:
            row = self.worker.registry.get(self.fd)
            if row is not None and row["websocket_status"] == STATUS_ACTIVE:
                self._switch(None)  # taken over from another worker: no second open event

    def data_received(self, data: bytes) -> None:
        codec = self.codec
        if codec is None:
            super().data_received(data)
            return
        # note_input() and count_requests() inlined, as in StreamConnection: the hot path
        worker = self.worker
        self.bytes_in += len(data)
        if self.last_time != worker.clock:
            self.last_time = worker.clock
            worker.registry.touch(self.fd, self.last_time, self.bytes_in, self.bytes_out)
        frame = parse_frame(data, self.fd, codec.simple_limit)
        if frame is None:  # not exactly one whole text or binary message: the codec's general path
            self._handle(codec.feed(data))
            return
        on_message = self.ws.on_message
        if on_message is not None:
            spawn(on_message, self.server, frame, name="message")
        worker.request_count += 1
        if worker.max_request and worker.request_count >= worker.max_request:
            worker.recycle()

    # -- opening handshake ---------------------------------------------------------------------------
    def _dispatch(self, request: Request) -> None:
        upgrade = request.header_value(b"upgrade")
        if upgrade is None or b"websocket" not in upgrade.lower():
            super()._dispatch(request)
            return
        request.conn = self
        request.fd = self.fd
        request.request_time = time.time()
        self.worker.registry.set_websocket_status(self.fd, STATUS_HANDSHAKE)
        ws = self.ws
        if ws.on_handshake is not None:
            response = self.active = self.handshake_response = Response(self, request)
            runner.start(self._custom_handshake(request, response), "handshake")
            return
        try:
            agreed = server_handshake(request.get_method(), request.header, ws.subprotocols, ws.compression)
        except HandshakeError as exc:
            log.warning("WebSocket handshake from %s:%d refused: %s", *self.remote, exc.reason)
            extra = [f"{name}: {value}\r\n" for name, value in exc.headers]
            self.write(simple_response(exc.status, f"{exc.reason}\n".encode(), extra=extra))
            self._close_after_reply()
            return
        self._accept(agreed.response(), request, agreed.deflate)

    async def _custom_handshake(self, request: Request, response: Response) -> None:
        handler = self.ws.on_handshake
        assert handler is not None
        try:
            result = handler(request, response)
            if type(result) is types.CoroutineType:
                result = await result
        except Exception:
            log.exception("handshake handler failed for connection %d", self.fd)
            self.handshake_response = None
            self.fail(response)
            self._close_after_reply()
            return
        if response.state != ENDED and not response.detached:
            if result is False:
                self.handshake_response = None
                response.close()
            else:
                response.end()  # 200: not an upgrade, so finish_response refuses it

    def finish_response(self, response: Response, payload: bytes) -> bool:
        if response is not self.handshake_response:
            return super().finish_response(response, payload)
        self.handshake_response = None
        if response.status_code != 101:
            ok = super().finish_response(response, payload)
            self._close_after_reply()
            return ok
        deflate = None
        for line in (response.headers or {}).values():
            name, _, value = line.partition(":")
            if name.lower() == "sec-websocket-extensions":
                deflate = accept_deflate(value.strip(), DeflateParams())
        self.active = None
        assert response.request is not None
        return self._accept(payload, response.request, deflate)

    def upgrade(self) -> None:
        if self.codec is None and self.handshake_response is None:
            super().upgrade()  # not a WebSocket upgrade (or refused): answer, then close

    def _close_after_reply(self) -> None:
        self.flush()
        self.closed_by_server = True
        self.head_since = 0.0
        self.transport.close()

    def _accept(self, response_101: bytes, request: Request, deflate: DeflateParams | None) -> bool:
        """Upgrade: the connection is established for every worker and the first step of ``open``
        has run (a chat room adding the client to its member list, say) before the 101 leaves, since
        the client may make another connection broadcast to this one the moment it reads the 101."""
        self.worker.registry.set_websocket_status(self.fd, STATUS_ACTIVE)
        self.flush()  # HTTP responses before the upgrade leave first
        ok = not self.transport.is_closing()
        self.bytes_out += len(response_101)
        self.batch = [response_101]  # what open sends and the replies to frames after the handshake follow it
        self.batch_size = len(response_101)
        try:
            self._open(request, deflate)
        finally:
            self._write_batch()
            self.batch = None
        return ok

    def _open(self, request: Request, deflate: DeflateParams | None) -> None:
        """Switch to frames, fire ``open``, parse what came after the handshake."""
        parser = self.parser
        leftover = parser.upgrade_data if parser is not None else None
        self._switch(deflate)
        on_open = self.ws.on_open
        if on_open is not None:
            spawn(on_open, self.server, request, name="open")
        if leftover and self.codec is not None:
            self._receive(leftover)

    def _switch(self, deflate: DeflateParams | None) -> None:
        self.parser = None
        self.head_since = 0.0
        self.codec = WebSocketCodec(max_message_size=self.ws.max_message_size, deflate=deflate, fd=self.fd)
        self.worker.registry.set_websocket_status(self.fd, STATUS_ACTIVE)
        _start_pinger(self.worker)

    # -- frames ----------------------------------------------------------------------------------------
    def _receive(self, data: bytes) -> None:
        assert self.codec is not None
        self._handle(self.codec.feed(data))

    def _handle(self, events: list[Frame | ProtocolError]) -> None:
        """Handle a read's events; the frames sent meanwhile leave together (``batch``)."""
        batching = self.batch is None and len(events) > 1  # (a batch may be open already: see _accept)
        if batching:
            self.batch = []
            self.batch_size = 0
        try:
            messages = self._start_callbacks(events)
        finally:
            if batching:
                self._write_batch()
                self.batch = None
        if messages:
            self.count_requests(messages)

    def _start_callbacks(self, events: list[Frame | ProtocolError]) -> int:
        """Start the callbacks of ``events``, answer pings and closes; the number of messages."""
        codec = self.codec
        assert codec is not None
        ws = self.ws
        server = self.server
        messages = 0
        for event in events:
            kind = type(event)
            if kind is Frame:
                opcode = event.opcode  # type: ignore[union-attr]
                if opcode < OPCODE_CLOSE:
                    messages += 1
                    if ws.on_message is not None:
                        spawn(ws.on_message, server, event, name="message")
                elif opcode == OPCODE_PING:
                    if ws.ping_frames:
                        spawn(ws.on_message, server, event, name="message")
                    else:
                        self.send(codec.encode(event.data, OPCODE_PONG))  # type: ignore[union-attr]
                else:  # a pong: exact time, so an answer to a heartbeat ping always counts
                    self.last_time = int(time.time())
                    if ws.pong_frames:
                        spawn(ws.on_message, server, event, name="message")
            elif kind is CloseFrame:
                if ws.close_frames:  # the application answers, e.g. with disconnect()
                    spawn(ws.on_message, server, event, name="message")
                else:
                    self.disconnect(event.code, event.reason)  # type: ignore[union-attr]
            else:
                error: ProtocolError = event  # type: ignore[assignment]
                log.warning("closing WebSocket connection %d from %s:%d: %s", self.fd, *self.remote, error)
                reason = error.reason.encode()[:123].decode(errors="ignore")
                self.disconnect(error.code, reason)
        return messages

    def _queue(self, frame: bytes) -> None:
        """Add ``frame`` to the batch; a batch over ``FLUSH_SIZE`` leaves at once, so a large one
        still fills the transport's buffer, and sets ``paused_writing``, as single writes do."""
        assert self.batch is not None
        self.batch.append(frame)
        self.batch_size += len(frame)
        if self.batch_size > FLUSH_SIZE:
            self._write_batch()

    def _write_batch(self) -> None:
        batch = self.batch
        if batch:
            if not self.half_closed and not self.transport.is_closing():
                self.transport.writelines(batch)
            self.batch = []
            self.batch_size = 0

    def push(self, data: str | bytes, opcode: int = OPCODE_TEXT, flags: int = FLAG_FIN) -> bool:
        """Send one frame; False if not an open WebSocket or the output buffer is full."""
        codec = self.codec
        if codec is None or codec.close_sent or self.paused_writing or self.closing:
            return False
        if flags == FLAG_FIN and 0 < opcode < OPCODE_CLOSE and codec.plain_output:
            frame = pack(data, opcode)  # codec.encode's own shortcut, inlined: the hot path
        else:
            frame = codec.encode(data, opcode, flags)
        self.bytes_out += len(frame)  # StreamConnection.send inlined: this is the hot path
        if self.batch is None:
            self.transport.write(frame)
        else:
            self._queue(frame)
        return True

    def disconnect(self, code: int = CLOSE_NORMAL, reason: str = "") -> bool:
        """Send a close frame (an echo when the peer closed first) and close the connection."""
        codec = self.codec
        if codec is None:
            return False
        frame = codec.close(code, reason)
        if frame:
            self.send(frame)
        self.close()
        return True

    def send(self, data: bytes) -> bool:
        if self.half_closed:
            return False
        if self.batch is None or self.paused_writing or self.closing:
            return super().send(data)
        self.bytes_out += len(data)
        self._queue(data)
        return True

    def close(self, reset: bool = False) -> None:
        codec = self.codec
        if codec is None or reset:
            super().close(reset)
            return
        codec.close_sent = True  # nothing more goes out once the server decided to close
        self.closed_by_server = True
        self._write_batch()  # what was sent before the close frame goes first
        transport = self.transport
        if transport.is_closing() or self.half_closed:
            return
        self.worker.registry.set_websocket_status(self.fd, STATUS_CLOSING)
        if transport.can_write_eof():
            self.half_closed = True
            # Half-close, so that a peer still sending does not turn the close into a reset that
            # destroys the close frame; the peer closes its side when it has read it.
            transport.write_eof()
            asyncio.get_running_loop().call_later(CLOSE_LINGER_SECONDS, transport.close)
        else:
            transport.close()

    # -- hand-over between workers (PROCESS mode reload) ----------------------------------------------
    def release(self, target_worker: int = -1) -> None:
        codec = self.codec
        if codec is not None and (codec.deflate is not None or codec._message_opcode):
            # A compression context or a half-received fragmented message cannot move to another
            # process: ask the client to come back (1012 Service Restart).
            self.disconnect(CLOSE_SERVICE_RESTART, "service restart")
            return
        self._write_batch()
        super().release(target_worker)

    def unprocessed_input(self) -> bytes:
        codec = self.codec
        if codec is None:
            return super().unprocessed_input()
        return bytes(codec._buffer)  # an incomplete frame: the next owner's codec starts with it


_pinging: set[int] = set()


def _start_pinger(worker: Worker) -> None:
    """Once per ``heartbeat_check_interval``: ping WebSocket connections silent that long, so a
    live peer's pong keeps them under ``heartbeat_idle_time`` (the core closes the others)."""
    interval = worker.settings["heartbeat_check_interval"]
    if not interval or id(worker) in _pinging:
        return
    _pinging.add(id(worker))
    loop = asyncio.get_running_loop()

    def tick() -> None:
        loop.call_later(interval, tick)
        now = time.time()
        for conn in list(worker.connections.values()):
            if (
                isinstance(conn, WebSocketConnection)
                and conn.codec is not None
                and now - conn.last_time >= interval
            ):
                conn.push(b"", OPCODE_PING)

    loop.call_later(interval, tick)


class Server(http.Server):
    """A WebSocket server (Swoole's ``Swoole\\WebSocket\\Server``): events ``open``, ``message``,
    ``close``, optional ``handshake`` and ``request``."""

    SETTINGS: ClassVar[dict[str, Setting]] = {**http.Server.SETTINGS, **WEBSOCKET_SETTINGS}
    EVENTS: ClassVar[dict[str, int]] = {**http.Server.EVENTS, "open": 2, "message": 2, "handshake": 2}

    pack = staticmethod(Frame.pack)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._websocket_options: dict[int, WebSocketOptions] = {}
        self._websocket_classes: dict[int, Any] = {}

    def start(self) -> bool:
        if "message" not in self.callbacks:
            raise RuntimeError("a WebSocket server needs a 'message' callback: use @server.on('message')")
        self.callbacks.setdefault("request", bad_request_page)
        return super().start()

    def websocket_options(self, port: Port) -> WebSocketOptions:
        options = self._websocket_options.get(id(port))
        if options is None:
            s = port.settings
            compression = s["websocket_compression"]
            subprotocols = s["websocket_subprotocol"] or ()
            options = self._websocket_options[id(port)] = WebSocketOptions(
                on_open=self.callbacks.get("open"),
                on_message=self.callbacks.get("message"),
                on_handshake=self.callbacks.get("handshake"),
                subprotocols=(subprotocols,) if isinstance(subprotocols, str) else tuple(subprotocols),
                compression=DeflateParams() if compression is True else (compression or None),
                max_message_size=s["package_max_length"],
                close_frames=s["open_websocket_close_frame"],
                ping_frames=s["open_websocket_ping_frame"],
                pong_frames=s["open_websocket_pong_frame"],
            )
        return options

    def connection_class_for(self, port: Port) -> Any:
        s = port.settings
        if not (s["open_http_protocol"] and s["open_websocket_protocol"]):
            return super().connection_class_for(port)
        factory = self._websocket_classes.get(id(port))
        if factory is None:
            factory = WebSocketConnection  # the port runs it inside TLS when it has TLS
            self._websocket_classes[id(port)] = factory
        return factory

    # -- connections -----------------------------------------------------------------------------------
    def _websocket(self, fd: int) -> WebSocketConnection | None:
        conn = self._local(fd)
        return conn if isinstance(conn, WebSocketConnection) else None

    def _remote_status(self, fd: int) -> int:
        row = self._registry.get(fd) if self._registry is not None else None
        return STATUS_NONE if row is None else row["websocket_status"]

    def push(self, fd: int, data: str | bytes, opcode: int = OPCODE_TEXT, flags: int = FLAG_FIN) -> bool:
        """Send a message to WebSocket connection ``fd``, whichever worker owns it.

        False if ``fd`` is not an established WebSocket connection or its output buffer is full.
        ``FLAG_COMPRESS`` compresses when the connection negotiated permessage-deflate and this
        worker owns it (from another worker the frame goes uncompressed, which RFC 7692 allows).
        """
        conn = self._connections.get(fd)
        if conn is not None:
            return conn.push(data, opcode, flags) if isinstance(conn, WebSocketConnection) else False
        if self._remote_status(fd) != STATUS_ACTIVE:
            return False
        return self.send(fd, Frame.pack(data, opcode, flags & ~FLAG_COMPRESS))

    def broadcast(
        self, fds: Iterable[int] | None, data: str | bytes, opcode: int = OPCODE_TEXT, flags: int = FLAG_FIN
    ) -> int:
        """Send one message to many connections (every connection by default) with one encoding
        of the frame; returns how many connections it was queued for."""
        frame = Frame.pack(data, opcode, flags & ~FLAG_COMPRESS)
        worker = self._require_worker()
        registry = self._registry
        assert registry is not None
        local = worker.connections
        mailbox = worker.mailbox
        if fds is None:  # one pass over the registry: each row already says owner and state
            targets: Iterable[tuple[int, dict[str, Any] | None]] = (
                (int(key), row) for key, row in registry.connections
            )
        else:
            targets = ((fd, None) for fd in fds)
        sent = 0
        for fd, row in targets:
            conn = local.get(fd)
            if conn is not None:
                if (
                    isinstance(conn, WebSocketConnection)
                    and conn.codec is not None
                    and not conn.codec.close_sent
                ):
                    sent += conn.send(frame)
                continue
            if row is None:
                row = registry.get(fd)
            if row is not None and row["websocket_status"] == STATUS_ACTIVE and mailbox is not None:
                sent += mailbox.send(row["pid"], MSG_SEND, FD.pack(fd), frame)
        return sent

    def is_established(self, fd: int) -> bool:
        """True while ``fd`` is a WebSocket connection past its handshake and not closing."""
        conn = self._websocket(fd)
        if conn is not None:
            return conn.codec is not None and not conn.codec.close_sent
        return self._local(fd) is None and self._remote_status(fd) == STATUS_ACTIVE

    isEstablished = is_established

    def disconnect(self, fd: int, code: int = CLOSE_NORMAL, reason: str = "") -> bool:
        """Close WebSocket connection ``fd`` with a close frame carrying ``code`` and ``reason``."""
        payload = close_payload(code, reason)  # invalid codes raise ValueError here, in any worker
        conn = self._websocket(fd)
        if conn is not None:
            return conn.disconnect(code, reason)
        if self._local(fd) is not None or self._remote_status(fd) != STATUS_ACTIVE:
            return False
        return self.send(fd, encode_frame(payload, OPCODE_CLOSE)) and self.close(fd)
