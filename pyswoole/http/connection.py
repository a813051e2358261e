"""The HTTP/1.1 connection: one asyncio Protocol per client, feeding the sans-IO parser and
answering requests in order.

The data path: ``data_received`` -> ``RequestParser.feed`` (llhttp in C) -> for each
complete request, the ``request`` callback runs as a coroutine started eagerly (no Task unless it
suspends). Responses finished while the received bytes are being handled are collected and
written with one ``transport.write``; pipelined requests wait for the response before them, so
answers always leave in request order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from pyswoole.coroutine import runner
from pyswoole.http._parser import Parser
from pyswoole.http._response import ConnectionCore, bind_connection
from pyswoole.http.parser import RequestParser
from pyswoole.http.request import Request
from pyswoole.http.response import DATE, ENDED, FRESH, STREAMING, Response
from pyswoole.http.upload import MultipartSink, is_multipart
from pyswoole.protocol.http import (
    CONTINUE,
    HttpError,
    check_body_size,
    expects_continue,
    simple_response,
)
from pyswoole.server.connection import StreamConnection

if TYPE_CHECKING:
    from pyswoole.http.server import HttpOptions
    from pyswoole.server.port import Port
    from pyswoole.server.worker import Worker

log = logging.getLogger("pyswoole")

#: More queued pipelined requests than this pause reading from the client.
MAX_QUEUED = 64
STREAM_CHUNK = 256 * 1024
#: How long a refused client may go on sending (discarded) before the connection is closed.
LINGER_SECONDS = 2.0
#: Responses made during one read are written together up to this many bytes.
FLUSH_SIZE = 64 * 1024
_worker: Worker | None = None  # the worker this process serves HTTP for (set on first connection)


def live_connection(fd: int) -> HttpConnection | None:
    """The HTTP connection ``fd`` of this worker, or None."""
    conn = None if _worker is None else _worker.connections.get(fd)
    return conn if isinstance(conn, HttpConnection) else None


def _start_housekeeping(worker: Worker) -> None:
    """Once a second: refresh the Date header and close connections slow to send a request head."""
    global _worker
    _worker = worker
    loop = asyncio.get_running_loop()

    def tick() -> None:
        if _worker is not worker:
            return
        DATE.refresh()
        now = time.monotonic()
        for conn in list(worker.connections.values()):
            since = getattr(conn, "head_since", 0.0)
            if since and now - since > conn.options.header_timeout:  # type: ignore[attr-defined]
                conn.header_timeout()  # type: ignore[attr-defined]
        loop.call_later(1.0, tick)

    DATE.refresh()
    loop.call_later(1.0, tick)


class HttpConnection(ConnectionCore, StreamConnection):
    """One HTTP/1.1 client connection.

    ``data_received`` and ``finish_response`` are ``ConnectionCore``'s (C): the per-read path for
    the common case, which calls the methods here for the rest (``_dispatch`` for a request the
    static handler may want, a non-eager or overridden dispatch, or a plain handler in a greenlet).
    """

    __slots__ = (
        "_closed_waiter",
        "_drain_waiter",
        "active",
        "compression_min",
        "draining",
        "head_since",
        "options",
        "out",
        "out_size",
        "parser",
        "queue",
        "route",
        "streaming",
        "tls",
    )

    def __init__(self, worker: Worker, port: Port, tls: bool = False):
        super().__init__(worker, port)
        self.options: HttpOptions = worker.server.http_options(port)  # type: ignore[attr-defined]
        self.parser: RequestParser | None = RequestParser(
            Request,
            max_header_size=self.options.max_header_size,
            max_body_size=self.options.max_body_size,
            on_head=self._on_head,
        )
        self.active: Response | None = None
        self.queue: deque[Request] = deque()
        self.out: list[bytes] | None = None
        self.out_size = 0
        self.draining = False
        self.streaming = False
        self.head_since = 0.0
        self.tls = tls
        self._drain_waiter: asyncio.Future | None = None
        self._closed_waiter: asyncio.Future | None = None
        self.route = self._fast_route()
        #: Bodies from this length on may be compressed; -1: compression is off.
        self.compression_min = self.options.compression_min_length if self.options.compression else -1

    def _fast_route(self) -> tuple[Any, tuple[bytes, ...], bool] | None:
        """What ``ConnectionCore`` needs to dispatch requests itself: ``(handler, URL prefixes of
        the static handler, handler is async)``; None when every request goes to ``_dispatch``."""
        options = self.options
        cls = type(self)
        if cls in options.routes:  # computed once per port and class, shared by its connections
            return options.routes[cls]
        route = None
        if options.eager and cls._dispatch is HttpConnection._dispatch:
            prefixes: tuple[bytes, ...] | None = ()
            if options.static is not None:
                prefixes = options.static.url_prefixes  # None: any URL may be a file
            if prefixes is not None:
                route = (options.handler, prefixes, runner.is_async(options.handler))
        options.routes[cls] = route
        return route

    # -- asyncio Protocol ------------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if not self.fd:
            return
        if _worker is not self.worker:
            _start_housekeeping(self.worker)
        self.head_since = time.monotonic()

    def connection_lost(self, exc: Exception | None) -> None:
        self.head_since = 0.0
        for request in self.queue:
            self._remove_uploads(request)
        self.queue.clear()
        active = self.active
        if active is not None and active.request is not None and active.state == ENDED:
            self._remove_uploads(active.request)
        if self.parser is not None:
            self.parser.discard()
        for waiter in (self._drain_waiter, self._closed_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        if self.streaming:
            self.paused_writing = True
            return
        super().pause_writing()

    def resume_writing(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.streaming:
            self.paused_writing = False
            return
        super().resume_writing()

    # -- requests ----------------------------------------------------------------------------------------
    def _on_head(self, request: Request) -> Any:
        """The head of a request with a body is complete: stop the header clock; check and route
        the body."""
        self.head_since = 0.0
        options = self.options
        check_body_size(request, options.max_body_size)
        if expects_continue(request) and request.version == "1.1":
            self.write(CONTINUE)
        if options.parse_files and is_multipart(request):
            return MultipartSink(request, options.upload_tmp_dir)
        return None

    def _dispatch(self, request: Request) -> None:
        request.conn = self
        request.fd = self.fd
        response = Response(self, request)
        self.active = response
        options = self.options
        if options.static is not None and options.static.serve(request, response):
            return
        if not options.eager:  # a handler that finishes its responses itself (ASGI, WSGI): a Task
            self.worker.loop.create_task(options.handler(request, response))
            return
        handler = options.handler
        try:
            if runner.plain_in_greenlet and not runner.is_async(handler):
                from pyswoole.coroutine.bridge import run_plain

                task = runner.call(
                    run_plain, (handler, (request, response)), self._finish_later, (response,), "request"
                )
            else:
                task = runner.call(handler, (request, response), self._finish_later, (response,), "request")
        except Exception as exc:
            self._handler_raised(response, exc)
            return
        if task is None and response.state != ENDED and not response.detached:
            response.end()

    async def _finish_later(self, rest: Awaitable[Any], response: Response) -> None:
        """The rest of a handler that suspended, then the same ending as in ``_dispatch``."""
        try:
            await rest
        except Exception as exc:
            self._handler_raised(response, exc)
            return
        if response.state != ENDED and not response.detached:
            response.end()

    def _handler_raised(self, response: Response, exc: Exception) -> None:
        request = response.request
        assert request is not None
        log.error(
            "request handler failed for %s %s",
            request.get_method(),
            request.url.decode("latin-1"),
            exc_info=exc,
        )
        self.fail(response)

    def fail(self, response: Response) -> None:
        """The handler raised: 500 if nothing was sent yet, else cut the connection."""
        if response.state == FRESH:
            response.headers = None
            response.reason = None
            response.status(500)
            response.header("Content-Type", "text/plain")
            response.end(b"Internal Server Error")
        elif response.state == STREAMING:
            response.state = ENDED
            self.transport.abort()

    def _drain_queue(self) -> None:
        """Serve queued pipelined requests until one suspends."""
        if self.draining:
            return
        self.draining = True
        batching = self.out is None
        if batching:
            self.out = []
            self.out_size = 0
        try:
            queue = self.queue
            while self.active is None and queue and not self.transport.is_closing():
                self._dispatch(queue.popleft())
            if not queue:
                self.transport.resume_reading()
        finally:
            self.draining = False
            if batching:
                self.flush()
                self.out = None

    # -- output --------------------------------------------------------------------------------------------
    def write(self, data: bytes) -> bool:
        """Queue ``data`` for the client. A client that does not read while more than
        ``buffer_output_size`` is buffered for it is disconnected."""
        transport = self.transport
        if transport.is_closing():
            return False
        if self.paused_writing and transport.get_write_buffer_size() > self.options.buffer_output_size:
            log.warning(
                "closing connection %d from %s:%d: client does not read (over buffer_output_size)",
                self.fd,
                *self.remote,
            )
            self.closed_by_server = True
            transport.abort()
            return False
        self.bytes_out += len(data)
        out = self.out
        if out is None:
            transport.write(data)
            return True
        out.append(data)
        self.out_size += len(data)
        if self.out_size > FLUSH_SIZE:  # batch small responses, not large ones
            self.flush()
        return True

    def flush(self) -> None:
        out = self.out
        if out:
            self.transport.write(b"".join(out))
            out.clear()
            self.out_size = 0

    async def drain(self) -> None:
        """Wait until the output buffer is below ``buffer_output_size`` (or the client is gone)."""
        while self.paused_writing and not self.transport.is_closing():
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter

    async def wait_closed(self) -> None:
        """Return once the connection is closed."""
        if self.transport.is_closing():
            return
        if self._closed_waiter is None:
            self._closed_waiter = asyncio.get_running_loop().create_future()
        await self._closed_waiter

    def stream_file(self, response: Response, head: bytes, fd: int, offset: int, count: int) -> bool:
        """Send ``head`` then ``count`` bytes of file ``fd``: with ``os.sendfile`` (zero-copy) when
        the connection is plain TCP, else read and written in chunks; the client's pace is kept."""
        ok = self.write(head)
        self.flush()
        runner.start(self._stream_file(response, fd, offset, count), "sendfile")
        return ok

    async def _stream_file(self, response: Response, fd: int, offset: int, count: int) -> None:
        transport = self.transport
        sock = None if self.tls else transport.get_extra_info("socket")
        sock_fd = sock.fileno() if sock is not None else -1
        self.streaming = True
        transport.set_write_buffer_limits(high=0, low=0)  # be told as soon as the kernel is full
        try:
            while count > 0 and not transport.is_closing():
                if sock_fd >= 0 and transport.get_write_buffer_size() == 0:
                    try:
                        sent = os.sendfile(sock_fd, fd, offset, min(count, 1 << 20))
                    except BlockingIOError:
                        sent = -1
                    except OSError as exc:
                        log.info("sendfile to connection %d stopped: %s", self.fd, exc)
                        transport.abort()
                        return
                    if sent == 0:
                        break
                    if sent > 0:
                        self.bytes_out += sent
                        offset += sent
                        count -= sent
                        continue
                chunk = os.pread(fd, min(count, STREAM_CHUNK), offset)
                if not chunk:
                    break
                transport.write(chunk)
                self.bytes_out += len(chunk)
                offset += len(chunk)
                count -= len(chunk)
                while transport.get_write_buffer_size() and not transport.is_closing():
                    self._drain_waiter = asyncio.get_running_loop().create_future()
                    await self._drain_waiter
            if count > 0 and not transport.is_closing():  # the file shrank under us
                log.warning("file for connection %d ended %d bytes early: closing", self.fd, count)
                transport.abort()
                return
        finally:
            os.close(fd)
            self.streaming = False
            if not transport.is_closing():
                transport.set_write_buffer_limits(high=self.options.buffer_output_size, low=0)
        self.finish_response(response, b"")

    @staticmethod
    def _remove_uploads(request: Request) -> None:
        """Delete the temporary files of a request's uploads."""
        files = request.files
        if not files:
            return
        for info in files.values():
            with contextlib.suppress(OSError):
                os.unlink(info["tmp_name"])
        request.files = None

    # -- PROCESS mode hand-over ---------------------------------------------------------------------------
    def release(self, target_worker: int = -1) -> None:
        """Hand an idle keep-alive connection to the next worker; one with a request in progress
        (half-received head or body, queued or unfinished responses) cannot move: close it (no
        byte of its answer was sent, so clients retry)."""
        parser = self.parser
        if self.active is not None or self.queue or (parser is not None and parser.in_message):
            log.info("connection %d has a request in progress: closed instead of handed over", self.fd)
            self.close()
            return
        super().release(target_worker)

    # -- bad clients ----------------------------------------------------------------------------------------
    def refuse(self, error: HttpError) -> None:
        """Answer ``error.status`` (after the responses already made) and close."""
        log.warning(
            "closing connection %d from %s:%d: %d %s", self.fd, *self.remote, error.status, error.reason
        )
        self.flush()
        body = f"{error.status} {error.reason}\n".encode()
        transport = self.transport
        transport.write(simple_response(error.status, body))
        self.closed_by_server = True
        self.head_since = 0.0
        self.parser = None  # whatever else arrives is discarded
        if transport.can_write_eof():
            # Lingering close: the client may still be sending (a refused body); closing at once
            # would reset the connection and destroy the answer before it is read.
            transport.write_eof()
            asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()

    def header_timeout(self) -> None:
        log.warning(
            "closing connection %d from %s:%d: request head not received in time", self.fd, *self.remote
        )
        self.head_since = 0.0
        if self.parser is not None and self.parser.in_message:
            self.refuse(HttpError(408, "Request Timeout"))
        else:
            self.closed_by_server = True
            self.transport.close()

    def upgrade(self) -> None:
        """A request asked to switch protocols: plain HTTP ports answer it, then close."""
        if self.active is not None:
            self.active.keep_alive = False
        elif not self.queue and not self.transport.is_closing():
            self.closed_by_server = True
            self.transport.close()


bind_connection(HttpConnection, Response, Parser, runner)
