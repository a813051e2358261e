"""The ASGI ``websocket`` scope on ``pyswoole.websocket.Server``: the application decides the
handshake (``websocket.accept`` -> 101, ``websocket.close`` first -> 403), then messages flow
through the server's ``message`` and ``close`` events."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import unquote

from pyswoole.http.request import Request
from pyswoole.http.response import Response
from pyswoole.protocol.websocket import (
    CLOSE_NORMAL,
    CLOSE_SERVER_ERROR,
    OPCODE_BINARY,
    OPCODE_TEXT,
    CloseFrame,
    Frame,
    HandshakeError,
    server_handshake,
)

log = logging.getLogger("pyswoole")

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
#: Close codes given to the application: a close frame without a code, and no close frame at all.
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006


class WebSocketSession:
    """One ASGI websocket connection: the application's ``receive``/``send``."""

    def __init__(self, server: Any, request: Request):
        self.server = server
        self.request = request
        self.fd = request.fd
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.decision: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.connected = False  # websocket.connect delivered
        self.open = False  # accepted and not closed
        self.closed = False

    def scope(self, state: dict[str, Any] | None) -> dict[str, Any]:
        request = self.request
        conn = request.conn
        assert conn is not None
        url = request.url
        cut = url.find(b"?")
        raw_path = url if cut < 0 else url[:cut]
        offered = request.header.get("sec-websocket-protocol", "")
        sockname = conn.transport.get_extra_info("sockname")
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": ASGI_VERSION,
            "http_version": request.version,
            "scheme": "wss" if conn.tls else "ws",
            "server": sockname[:2] if isinstance(sockname, tuple) else None,
            "client": conn.remote,
            "root_path": "",
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": b"" if cut < 0 else url[cut + 1 :],
            "headers": [(name.lower(), value) for name, value in request.headers],
            "subprotocols": [p.strip() for p in offered.split(",") if p.strip()],
        }
        if state is not None:
            scope["state"] = state.copy()
        return scope

    async def receive(self) -> dict[str, Any]:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if not self.decision.done():
            if kind not in ("websocket.accept", "websocket.close"):
                raise RuntimeError(f"{kind!r} before websocket.accept")
            self.decision.set_result(message)
            if kind == "websocket.close":
                self.closed = True
            return
        if self.closed or not self.open:
            raise RuntimeError(f"{kind!r} on a closed WebSocket")
        if kind == "websocket.send":
            text = message.get("text")
            if text is not None:
                self.server.push(self.fd, text, OPCODE_TEXT)
            else:
                self.server.push(self.fd, message.get("bytes") or b"", OPCODE_BINARY)
            conn = self.server._websocket(self.fd)
            if conn is not None and conn.paused_writing:
                await conn.drain()
        elif kind == "websocket.close":
            self.closed = True
            self.open = False
            self.server.disconnect(self.fd, message.get("code", CLOSE_NORMAL), message.get("reason") or "")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in a websocket scope")

    def deliver(self, frame: Frame) -> None:
        if frame.opcode == OPCODE_TEXT:
            self.inbox.put_nowait({"type": "websocket.receive", "text": frame.data})
        elif frame.opcode == OPCODE_BINARY:
            self.inbox.put_nowait({"type": "websocket.receive", "bytes": frame.data})

    def disconnected(self, code: int) -> None:
        if not self.closed:
            self.closed = True
            self.open = False
            self.inbox.put_nowait({"type": "websocket.disconnect", "code": code})
        if not self.decision.done():
            self.decision.set_result({"type": "websocket.close", "code": code})


class WebSocketBridge:
    """The ``handshake``, ``message`` and ``close`` callbacks that run the websocket scope."""

    def __init__(self, handler: Any):
        self.handler = handler  # the ASGIHandler: app, lifespan state, readiness
        self.sessions: dict[int, WebSocketSession] = {}

    async def handshake(self, request: Request, response: Response) -> bool:
        handler = self.handler
        if handler.ready is not None and not handler.ready.is_set():
            await handler.ready.wait()
        conn = request.conn
        assert conn is not None
        server = conn.server
        session = self.sessions[request.fd] = WebSocketSession(server, request)
        asyncio.get_running_loop().create_task(self._run(session, handler.state))
        decision = await session.decision
        if decision["type"] != "websocket.accept" or conn.transport.is_closing():
            self.sessions.pop(request.fd, None)
            response.status(403)
            response.end()
            return True
        subprotocol = decision.get("subprotocol")
        try:
            agreed = server_handshake(
                request.get_method(), request.header, (subprotocol,) if subprotocol else ()
            )
        except HandshakeError as exc:
            self.sessions.pop(request.fd, None)
            session.disconnected(CLOSE_ABNORMAL)
            response.status(exc.status)
            response.end(f"{exc.reason}\n")
            return True
        response.status(101)
        for name, value in agreed.headers:
            response.header(name, value)
        for name, value in decision.get("headers", ()):
            response.header(name.decode("latin-1"), value.decode("latin-1"))
        session.open = True
        response.end()
        return True

    async def _run(self, session: WebSocketSession, state: dict[str, Any] | None) -> None:
        try:
            await self.handler.app(session.scope(state), session.receive, session.send)
        except Exception:
            log.exception("ASGI websocket application failed on connection %d", session.fd)
            if session.open:
                session.server.disconnect(session.fd, CLOSE_SERVER_ERROR, "")
        else:
            if session.open:  # returned without closing
                session.server.disconnect(session.fd, CLOSE_NORMAL, "")
        finally:
            if not session.decision.done():
                session.decision.set_result({"type": "websocket.close"})

    def message(self, server: Any, frame: Frame) -> None:
        session = self.sessions.get(frame.fd)
        if session is None:
            return
        if isinstance(frame, CloseFrame):
            code = frame.code or CLOSE_NO_STATUS
            server.disconnect(frame.fd, CLOSE_NORMAL if code in (CLOSE_NO_STATUS, CLOSE_ABNORMAL) else code)
            session.disconnected(code)
            return
        session.deliver(frame)

    def close(self, server: Any, fd: int, reactor_id: int) -> None:
        session = self.sessions.pop(fd, None)
        if session is not None:
            session.disconnected(CLOSE_ABNORMAL)


def attach_websocket(server: Any, handler: Any) -> WebSocketBridge:
    """Route ``server``'s WebSocket events (a ``pyswoole.websocket.Server``) to ``handler.app``."""
    bridge = WebSocketBridge(handler)
    server.set({"open_websocket_close_frame": True})
    server.on("handshake", bridge.handshake)
    server.on("message", bridge.message)
    server.on("close", bridge.close)
    return bridge
