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

from pyswoole.asgi._cycle import CycleCore, Entry, http_scope
from pyswoole.asgi._cycle import configure as _configure
from pyswoole.asgi._cycle import first_step as _first_step
from pyswoole.asgi._cycle import promote as _promote
from pyswoole.coroutine import current_task, runner
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
#: Checked header lines by the headers of ``http.response.start`` (applications tend to send
#: the same ones again and again): one dict lookup instead of a loop over the headers.
_HEADER_LINES: dict[tuple, tuple[bytes, bool, bool]] = {}
_HEADER_CACHE_SIZE = 1024


class ASGIError(RuntimeError):
    """The application broke the ASGI protocol (message order or types)."""


def _status_line(code: int) -> bytes:
    line = _STATUS_LINES.get(code)
    return line if line is not None else f"HTTP/1.1 {code} {REASONS.get(code, 'Unknown')}\r\n".encode()


class HttpCycle(CycleCore):
    """One request/response exchange: the ``receive`` and ``send`` of an ``http`` scope.

    ``HttpCycle(conn, request, response)``; its fields (``conn``, ``request``, ``response``,
    ``head``, ``chunked``, ``bodyless``, ``body_sent``) are ``CycleCore``'s (C), whose
    ``asgi_send``/``asgi_receive`` handle the usual messages at once and call ``send``/``receive``
    here, the reference, for the others."""

    __slots__ = ()

    async def receive(self) -> Message:
        if not self.body_sent:
            self.body_sent = True
            return {"type": "http.request", "body": self.request.body, "more_body": False}
        if self.response.state != ENDED:  # the exchange is over once the response is complete
            await self.conn.wait_closed()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            head = self.head
            if head is None:
                raise ASGIError("http.response.body before http.response.start")
            response = self.response
            state = response.state
            if state == FRESH and not message.get("more_body", False):  # the whole body at once
                body = _body(message)
                response.state = ENDED
                if self.chunked:  # its length is known now
                    head += b"Content-Length: %d\r\n" % len(body)
                if response.keep_alive and self.request.version == "1.1":
                    head += b"\r\n"
                else:
                    head += self._close_line()
                self.conn.finish_response(response, head if self.bodyless else head + body)
            elif state == ENDED:
                if message.get("more_body", False) or message.get("body"):
                    raise ASGIError("http.response.body after the response ended")
            elif message.get("more_body", False):
                await self._write(_body(message))
            else:
                self._end_stream(_body(message))
        elif kind == "http.response.start":
            if self.head is not None or self.response.state != FRESH:
                raise ASGIError("http.response.start sent twice")
            self._start(message)
        elif kind == "http.response.pathsend":
            raise ASGIError("http.response.pathsend is not supported")
        else:
            raise ASGIError(f"unexpected ASGI message {kind!r} in an http scope")

    def _start(self, message: Message) -> None:
        status = message["status"]
        if type(status) is not int:
            status = int(status)
        response = self.response
        response.status_code = status
        headers = message.get("headers")
        if headers:
            key = tuple(headers)
            try:
                lines = _HEADER_LINES.get(key)
                hashable = True
            except TypeError:  # lists of lists
                lines = None
                hashable = False
            if lines is None:
                lines = _header_lines(key)
                if hashable:
                    if len(_HEADER_LINES) >= _HEADER_CACHE_SIZE:
                        _HEADER_LINES.clear()
                    _HEADER_LINES[key] = lines
            block, has_length, close = lines
            if close:
                response.keep_alive = False
            self.head = _status_line(status) + DATE.raw + block
        else:
            has_length = False
            self.head = _status_line(status) + DATE.raw
        self.bodyless = status in _NO_BODY_STATUS or self.request.method == b"HEAD"
        self.chunked = not has_length and status >= 200 and status not in _NO_BODY_STATUS

    def _close_line(self) -> bytes:
        if not self.response.keep_alive:
            return b"Connection: close\r\n\r\n"
        if self.request.version == "1.0":
            return b"Connection: keep-alive\r\n\r\n"
        return b"\r\n"

    def _end_stream(self, body: bytes) -> None:
        """The last ``http.response.body`` of a streamed response."""
        if self.bodyless:
            payload = b""
        elif self.chunked:
            payload = (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
        else:
            payload = body
        response = self.response
        response.state = ENDED
        self.conn.finish_response(response, payload)

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
        if not body or self.bodyless:
            return
        conn.write((b"%x\r\n%s\r\n" % (len(body), body)) if self.chunked else body)
        if conn.paused_writing:
            await conn.drain()


def _body(message: Message) -> bytes:
    """The ``body`` of an ``http.response.body``, checked before anything is sent or changed."""
    body = message.get("body", b"")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise ASGIError(f"http.response.body: body must be bytes, not {type(body).__name__}")
    return body


def _header_lines(headers: Any) -> tuple[bytes, bool, bool]:
    """The response header lines of an ``http.response.start``, checked: CR/LF refused,
    ``Server``/``Date``/``Connection`` dropped (the server sends its own). Also: is there a Content-Length, and
    does a ``Connection: close`` end the connection."""
    lines = []
    has_length = close = False
    for name, value in headers:
        if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name:
            raise ASGIError(f"invalid response header {name!r}: {value!r}")
        lower = name.lower()
        if lower == b"content-length":
            has_length = True
        elif lower == b"connection":  # the server writes its own
            close = close or value.lower() == b"close"
            continue
        elif lower == b"server" or lower == b"date":
            continue
        lines.append(b"%s: %s\r\n" % (name, value))
    return b"".join(lines), has_length, close


_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}
_WILDCARD_HOSTS = frozenset(("", "0.0.0.0", "::"))
#: The local address of the connections to a port bound to one address (all share it), by port
#: (see scope_server in _cycle.c).
_port_addresses: dict[Any, tuple[str, int]] = {}


def _new_box() -> tuple[asyncio.Task, list]:
    """``asyncio.current_task()`` asked during an application's first step in place (see
    ``_cycle.promote``): a real Task for the request, which runs the rest of it if it suspends,
    and the hand-over list it reads. anyio's cancel scopes and task groups need one: they key
    their state on the Task they were entered in."""
    handoff: list = []
    return asyncio.get_running_loop().create_task(_promoted(handoff)), handoff


async def _promoted(handoff: list) -> None:
    """The Task of a request whose application asked for one: the rest of its run, if any."""
    if handoff and handoff[0] is not None:
        rest, cycle = handoff[0]
        await _run(rest, cycle)


async def _run(app: Awaitable[None], cycle: HttpCycle) -> None:
    """Await (the rest of) the application of one request, then check its answer."""
    try:
        await app
    except Exception as exc:
        _failed(cycle, exc)
        return
    if cycle.response.state != ENDED:
        _unfinished(cycle)


async def _carry_on(rest: Awaitable[None], cycle: HttpCycle, box: tuple[asyncio.Task, list] | None) -> None:
    """The rest of an application that suspended in its first step in place (``rest``: see
    ``runner._continue``), in the request's Task, or in the Task it was given (``box``)."""
    if box is None:
        await _run(rest, cycle)
    else:
        box[1].append((rest, cycle))
        await box[0]


def _failed(cycle: HttpCycle, exc: Exception) -> None:
    """The application raised: 500 if nothing was sent yet, else cut the connection."""
    request = cycle.request
    response = cycle.response
    log.error(
        "ASGI application failed for %s %s", request.get_method(), request.url.decode("latin-1"), exc_info=exc
    )
    if response.state == FRESH:
        cycle.head = None
        response.keep_alive = False
        cycle.conn.fail(response)
    elif response.state == STREAMING:
        response.state = ENDED
        cycle.conn.transport.abort()


def _unfinished(cycle: HttpCycle) -> None:
    """The application returned before the end of its response."""
    response = cycle.response
    if cycle.head is None:
        log.error("ASGI application returned without a response for %s", cycle.request.url.decode("latin-1"))
        cycle.conn.fail(response)
    else:  # returned in the middle of a streamed body: the response is incomplete
        log.error("ASGI application returned before the end of its response body")
        response.state = ENDED
        cycle.conn.transport.abort()


current_task.promote = _promote
_configure(
    response_class=Response,
    header_cache=_HEADER_LINES,
    header_cache_size=_HEADER_CACHE_SIZE,
    header_lines=_header_lines,
    status_lines=_STATUS_LINES,
    status_line=_status_line,
    date_header=DATE,
    scope_template=dict.fromkeys(
        (
            "type",
            "asgi",
            "http_version",
            "server",
            "client",
            "scheme",
            "method",
            "root_path",
            "path",
            "raw_path",
            "query_string",
            "headers",
        )
    )
    | {"type": "http", "asgi": ASGI_VERSION, "root_path": ""},
    methods=_METHODS,
    port_addresses=_port_addresses,
    wildcard_hosts=_WILDCARD_HOSTS,
    unquote=unquote,
    cycle_class=HttpCycle,
    module_globals=globals(),
    runner_globals=vars(runner),
    new_box=_new_box,
)


class ASGIHandler:
    """The ``request`` callback that runs an ASGI application, plus its lifespan.

    The application is started in place, as pyswoole starts any handler: no Task unless it
    suspends. If it asks for ``asyncio.current_task()`` before (anyio's cancel scopes and task
    groups do: Starlette, FastAPI...), it gets a real Task at once, which runs the rest of the
    request. ``task=True`` runs every request in a Task of its own from the start instead.
    """

    def __init__(self, app: ASGIApp, lifespan: str = "auto", task: bool = False):
        if lifespan not in ("auto", "on", "off"):
            raise ValueError("lifespan must be 'auto', 'on' or 'off'")
        self.app = app
        self.lifespan_mode = lifespan
        #: False: run requests in a Task of their own (read by the HTTP server, HttpOptions.eager).
        self.eager = not task
        self.state: dict[str, Any] | None = None
        #: Set while the lifespan startup runs (requests wait for it), None otherwise.
        self.ready: asyncio.Event | None = None
        self._lifespan: Lifespan | None = None

    async def __call__(self, request: Request, response: Response) -> None:
        ready = self.ready
        if ready is not None:
            await ready.wait()
        conn = request.conn
        assert conn is not None
        cycle = HttpCycle(conn, request, response)
        app = self.app(http_scope(request, self.state), cycle.asgi_receive, cycle.asgi_send)
        if runner._state.current is not runner._PENDING:  # in a Task already
            await _run(app, cycle)
            return
        rest = _first_step(cycle, app)
        if rest is not None:
            await rest

    async def startup(self, server: Server, worker_id: int) -> None:
        if self.lifespan_mode == "off" or getattr(
            server, "taskworker", False
        ):  # task workers serve no requests
            return
        ready = self.ready = asyncio.Event()
        self.state = {}
        self._lifespan = Lifespan(self.app, self.state)
        try:
            ok = await self._lifespan.startup()
        finally:
            self.ready = None
            ready.set()
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


def attach(server: Server, app: ASGIApp, lifespan: str = "auto", task: bool = False) -> ASGIHandler:
    """Serve ``app`` on ``server``: its ``request``, ``worker_start`` and ``worker_exit`` callbacks,
    and on a ``pyswoole.websocket.Server`` the websocket scope too. ``task``: see ``ASGIHandler``."""
    handler = ASGIHandler(app, lifespan, task)
    if "handshake" in server.EVENTS:
        from pyswoole.asgi.websocket import attach_websocket

        attach_websocket(server, handler)
    # when eager, the C entry: it runs __call__'s common case without a coroutine of its own
    server.on("request", Entry(handler, ASGIHandler.__call__.__code__) if handler.eager else handler)
    server.on("worker_start", handler.startup)
    # worker_exit, not worker_stop: the worker drains every task before worker_stop, and the
    # lifespan task lives until it is told to shut down.
    server.on("worker_exit", handler.shutdown)
    return handler


__all__ = ["ASGIHandler", "HttpCycle", "Lifespan", "attach"]
