"""Run ASGI 3 applications on ``pyswoole.http.Server`` (HTTP and lifespan scopes) or
``pyswoole.websocket.Server`` (websocket scope too).

``attach(server, app)`` makes ``app`` the server's ``request`` handler and runs the lifespan
protocol in each worker (startup at ``worker_start``, requests wait for it; shutdown at
``worker_exit``). ``pyswoole serve module:app`` does this for you.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from pyswoole.http.connection import HttpConnection
from pyswoole.http.request import Request
from pyswoole.http.response import DATE, ENDED, FRESH, STREAMING, Response
from pyswoole.http.server import Server
from pyswoole.protocol.http import REASONS

log = logging.getLogger("pyswoole")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
_STATUS_LINES: dict[int, bytes] = {
    code: f"HTTP/1.1 {code} {reason}\r\n".encode() for code, reason in REASONS.items()
}
_NO_BODY_STATUS = frozenset((204, 304))


class ASGIError(RuntimeError):
    """The application broke the ASGI protocol (message order or types)."""


def _status_line(code: int) -> bytes:
    line = _STATUS_LINES.get(code)
    return line if line is not None else f"HTTP/1.1 {code} {REASONS.get(code, 'Unknown')}\r\n".encode()


class HttpCycle:
    """One request/response exchange: the ``receive`` and ``send`` of an ``http`` scope."""

    __slots__ = ("body_sent", "chunked", "conn", "head", "request", "response")

    def __init__(self, conn: HttpConnection, request: Request, response: Response):
        self.conn = conn
        self.request = request
        self.response = response
        self.head: bytes | None = None
        self.chunked = False
        self.body_sent = False

    async def receive(self) -> Message:
        if not self.body_sent:
            self.body_sent = True
            return {"type": "http.request", "body": self.request.body, "more_body": False}
        if self.response.state != ENDED:  # the exchange is over once the response is complete
            await self.conn.wait_closed()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        response = self.response
        if kind == "http.response.start":
            if self.head is not None or response.state != FRESH:
                raise ASGIError("http.response.start sent twice")
            self._start(message)
        elif kind == "http.response.body":
            if self.head is None:
                raise ASGIError("http.response.body before http.response.start")
            if response.state == ENDED:
                if message.get("more_body", False) or message.get("body"):
                    raise ASGIError("http.response.body after the response ended")
                return
            body = message.get("body", b"")
            if message.get("more_body", False):
                await self._write(body)
            else:
                self._end(body)
        elif kind == "http.response.pathsend":
            raise ASGIError("http.response.pathsend is not supported")
        else:
            raise ASGIError(f"unexpected ASGI message {kind!r} in an http scope")

    def _start(self, message: Message) -> None:
        status = int(message["status"])
        response = self.response
        response.status_code = status
        parts = [_status_line(status), DATE.raw]
        has_length = False
        for name, value in message.get("headers", ()):
            if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name:
                raise ASGIError(f"invalid response header {name!r}: {value!r}")
            lower = name.lower()
            if lower == b"content-length":
                has_length = True
            elif lower == b"connection" and value.lower() == b"close":
                response.keep_alive = False
            elif lower == b"server" or lower == b"date":
                continue
            parts.append(b"%s: %s\r\n" % (name, value))
        self.chunked = not has_length and status not in _NO_BODY_STATUS and status >= 200
        self.head = b"".join(parts)

    def _close_line(self) -> bytes:
        response = self.response
        if not response.keep_alive:
            return b"Connection: close\r\n\r\n"
        if self.request.version == "1.0":
            return b"Connection: keep-alive\r\n\r\n"
        return b"\r\n"

    def _end(self, body: bytes) -> None:
        response = self.response
        conn = self.conn
        head_only = self.request.method == b"HEAD" or response.status_code in _NO_BODY_STATUS
        if response.state == STREAMING:
            response.state = ENDED
            if self.chunked:
                payload = (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
            else:
                payload = body
            conn.finish_response(response, b"" if head_only else payload)
            return
        response.state = ENDED
        head = self.head
        assert head is not None
        if self.chunked:  # the whole body in one message: its length is known
            head += b"Content-Length: %d\r\n" % len(body)
        head += self._close_line()
        conn.finish_response(response, head if head_only else head + body)

    async def _write(self, body: bytes) -> None:
        response = self.response
        conn = self.conn
        if response.state == FRESH:
            response.state = STREAMING
            head = self.head
            assert head is not None
            if self.chunked:
                if self.request.version == "1.0":
                    self.chunked = False
                    response.keep_alive = False
                else:
                    head += b"Transfer-Encoding: chunked\r\n"
            conn.write(head + self._close_line())
        if not body or self.request.method == b"HEAD":
            return
        conn.write((b"%x\r\n%s\r\n" % (len(body), body)) if self.chunked else body)
        if conn.paused_writing:
            await conn.drain()


def http_scope(request: Request, state: dict[str, Any] | None) -> Scope:
    conn = request.conn
    assert conn is not None
    url = request.url
    cut = url.find(b"?")
    raw_path = url if cut < 0 else url[:cut]
    sockname = conn.transport.get_extra_info("sockname")
    scope: Scope = {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": request.version,
        "server": sockname[:2] if isinstance(sockname, tuple) else None,
        "client": conn.remote,
        "scheme": "https" if conn.tls else "http",
        "method": request.method.decode("ascii"),
        "root_path": "",
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": b"" if cut < 0 else url[cut + 1 :],
        "headers": [(name.lower(), value) for name, value in request.headers],
    }
    if state is not None:
        scope["state"] = state.copy()
    return scope


class ASGIHandler:
    """The ``request`` callback that runs an ASGI application, plus its lifespan."""

    #: Run in a Task of its own, not started in place: ASGI frameworks (anyio's cancel scopes,
    #: thread offloading) need a current task.
    eager = False

    def __init__(self, app: ASGIApp, lifespan: str = "auto"):
        if lifespan not in ("auto", "on", "off"):
            raise ValueError("lifespan must be 'auto', 'on' or 'off'")
        self.app = app
        self.lifespan_mode = lifespan
        self.state: dict[str, Any] | None = None
        self.ready: asyncio.Event | None = None
        self._lifespan: Lifespan | None = None

    async def __call__(self, request: Request, response: Response) -> None:
        if self.ready is not None and not self.ready.is_set():
            await self.ready.wait()
        conn = request.conn
        assert conn is not None
        cycle = HttpCycle(conn, request, response)
        try:
            await self.app(http_scope(request, self.state), cycle.receive, cycle.send)
        except Exception:
            log.exception(
                "ASGI application failed for %s %s", request.get_method(), request.url.decode("latin-1")
            )
            if response.state == FRESH:
                cycle.head = None
                response.keep_alive = False
                conn.fail(response)
            elif response.state == STREAMING:
                response.state = ENDED
                conn.transport.abort()
            return
        if response.state != ENDED:
            if cycle.head is None:
                log.error(
                    "ASGI application returned without a response for %s", request.url.decode("latin-1")
                )
                conn.fail(response)
            else:  # returned in the middle of a streamed body: the response is incomplete
                log.error("ASGI application returned before the end of its response body")
                response.state = ENDED
                conn.transport.abort()

    async def startup(self, server: Server, worker_id: int) -> None:
        if self.lifespan_mode == "off" or getattr(
            server, "taskworker", False
        ):  # task workers serve no requests
            return
        self.ready = asyncio.Event()
        self.state = {}
        self._lifespan = Lifespan(self.app, self.state)
        try:
            ok = await self._lifespan.startup()
        finally:
            self.ready.set()
        if not ok:
            if self._lifespan.unsupported and self.lifespan_mode == "auto":
                self.state = None
                return
            log.error("ASGI lifespan startup failed in worker %d: stopping the server", worker_id)
            server.shutdown()

    async def shutdown(self, server: Server, worker_id: int) -> None:
        if self._lifespan is not None and not self._lifespan.unsupported:
            await self._lifespan.shutdown()


class Lifespan:
    """The ``lifespan`` scope of one worker."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]):
        self.app = app
        self.state = state
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.unsupported = False
        self.task: asyncio.Task | None = None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.state}
        try:
            await self.app(scope, self.inbox.get, self.outbox.put)
        except Exception as exc:
            self.unsupported = True
            log.info("ASGI application does not run the lifespan protocol (%s: %s)", type(exc).__name__, exc)
        finally:
            await self.outbox.put({"type": "lifespan.done"})

    async def _exchange(self, kind: str, timeout: float = 30.0) -> bool:
        await self.inbox.put({"type": f"lifespan.{kind}"})
        message = await asyncio.wait_for(self.outbox.get(), timeout)
        if message["type"] == f"lifespan.{kind}.complete":
            return True
        if message["type"] == f"lifespan.{kind}.failed":
            log.error("ASGI lifespan %s failed: %s", kind, message.get("message", ""))
        elif message["type"] == "lifespan.done" and kind == "startup":  # returned without answering
            self.unsupported = True
            log.info("ASGI application does not run the lifespan protocol (returned at once)")
        return False

    async def startup(self) -> bool:
        self.task = asyncio.get_running_loop().create_task(self._run())
        return await self._exchange("startup")

    async def shutdown(self) -> None:
        if self.task is None or self.task.done():
            return
        try:
            await self._exchange("shutdown")
        except TimeoutError:
            log.warning("ASGI lifespan shutdown did not complete in time")


def attach(server: Server, app: ASGIApp, lifespan: str = "auto") -> ASGIHandler:
    """Serve ``app`` on ``server``: its ``request``, ``worker_start`` and ``worker_exit`` callbacks,
    and on a ``pyswoole.websocket.Server`` the websocket scope too."""
    handler = ASGIHandler(app, lifespan)
    if "handshake" in server.EVENTS:
        from pyswoole.asgi.websocket import attach_websocket

        attach_websocket(server, handler)
    server.on("request", handler)
    server.on("worker_start", handler.startup)
    # worker_exit, not worker_stop: the worker drains every task before worker_stop, and the
    # lifespan task lives until it is told to shut down.
    server.on("worker_exit", handler.shutdown)
    return handler


__all__ = ["ASGIHandler", "HttpCycle", "Lifespan", "attach"]
