"""HTTP/1.1 without I/O: request parsing on httptools (llhttp), limits, and response heads.

``RequestParser.feed(data)`` takes bytes as they arrive and returns the requests completed by
them, in order. Requests are instances of the ``factory`` class given to the parser (the HTTP
server passes its ``Request``, so a parsed request costs one object). Anything wrong raises
``HttpError`` with the status to answer before closing: 400 for malformed input (llhttp also
refuses ``Content-Length`` with ``Transfer-Encoding`` and duplicated ``Content-Length``, the
request-smuggling vectors), 431 for a header section over ``max_header_size``, 413 for a body
over ``max_body_size`` (as soon as the declared length or the bytes received exceed it).
"""

from __future__ import annotations

import http
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any, Protocol

import httptools

#: Reason phrases by status code.
REASONS: dict[int, str] = {s.value: s.phrase for s in http.HTTPStatus}
REASONS.setdefault(418, "I'm a teapot")

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: Methods whose requests are not expected to carry a body (``on_head`` is not called for them).
BODYLESS = (b"GET", b"HEAD")


class HttpError(Exception):
    """A request that must be refused with ``status`` and a closed connection."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class BodySink(Protocol):
    """Where the body of one request goes while it arrives (uploads to temporary files)."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None:
        """The body is complete."""

    def abort(self) -> None:
        """The body will never be complete (bad input, client gone): discard what was kept."""


class RawRequest:
    """A parsed request: what the wire said, nothing derived yet.

    The defaults are class attributes and there is no ``__init__``: the parser sets only what
    the request has (creating a request costs no Python call).
    """

    url: bytes = b""
    headers: list[tuple[bytes, bytes]] | tuple[()] = ()
    method: bytes = b"GET"
    version: str = "1.1"
    keep_alive: bool = True
    upgrade: bool = False
    body: bytes = b""
    chunks: list[bytes] | None = None

    def header_value(self, lower_name: bytes) -> bytes | None:
        """The last value of a header (``lower_name`` in lower case), or None."""
        found = None
        for name, value in self.headers:
            if len(name) == len(lower_name) and name.lower() == lower_name:
                found = value
        return found


class RequestParser:
    """Feed bytes, get whole requests. One parser per connection.

    ``on_head(request)`` (optional) runs when the head of a request that may have a body (not
    ``GET``/``HEAD``) is complete, and may return a
    ``BodySink`` that receives the body instead of memory (the sink is closed at the end of the
    message); it may also raise ``HttpError``.
    """

    __slots__ = (
        "_body_size",
        "_current",
        "_head_size",
        "_parser",
        "_sink",
        "closed",
        "error",
        "factory",
        "max_body_size",
        "max_header_size",
        "messages",
        "on_head",
        "stopped",
        "upgrade_data",
    )

    def __init__(
        self,
        factory: Callable[[], RawRequest] = RawRequest,
        *,
        max_header_size: int = 64 * 1024,
        max_body_size: int = 2 * 1024 * 1024,
        on_head: Callable[[Any], BodySink | None] | None = None,
    ):
        self.factory = factory
        self.max_header_size = max_header_size
        self.max_body_size = max_body_size
        self.on_head = on_head
        self.messages: list[Any] = []
        self.upgrade_data: bytes | None = None
        self.error: HttpError | None = None
        self.closed = False
        self.stopped = False  # error, upgrade or closed: no more parsing
        self._current: Any = None
        self._sink: BodySink | None = None
        self._head_size = 0
        self._body_size = 0
        self._parser = httptools.HttpRequestParser(self)

    def feed(self, data: bytes) -> list[Any]:
        """Parse ``data``; return the requests it completed (a fresh list each time there are any).

        Bad input raises ``HttpError``, after the requests completed before it were returned: an
        error found in the same bytes as complete requests is raised by the next ``feed`` (or
        read from ``error``). Bytes after a request that closes the connection are ignored. After
        a request that upgrades the protocol (``Upgrade`` or ``CONNECT``) the parser stops: the
        bytes after that request are in ``upgrade_data``.
        """
        if self.stopped:
            return self._feed_stopped(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgrade_data = data[exc.args[0] :] if exc.args else b""
            self.stopped = True
            if self.messages:
                self.messages[-1].upgrade = True
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(
                cause
                if isinstance(cause, HttpError)
                else HttpError(500, f"parser callback failed: {cause!r}")
            )
        except httptools.HttpParserError as exc:
            messages = self.messages
            if messages and not messages[-1].keep_alive and self._current is None:
                self.closed = self.stopped = True  # more sent after a request that ends the connection
            else:
                self._fail(HttpError(400, str(exc) or type(exc).__name__))
        messages = self.messages
        if messages:
            self.messages = []
            return messages
        if self.error is not None:
            raise self.error
        return messages

    def _feed_stopped(self, data: bytes) -> list[Any]:
        """``feed`` after an error, an upgrade or a closing request."""
        if self.error is not None:
            raise self.error
        if self.upgrade_data is not None:
            self.upgrade_data += data
        return []

    def _fail(self, error: HttpError) -> None:
        self.error = error
        self.stopped = True
        self._current = None
        self.discard()

    @property
    def in_message(self) -> bool:
        """True between the first byte of a request and its end."""
        return self._current is not None

    def discard(self) -> None:
        """Abort the body sink of a request that will not complete (the connection is gone)."""
        if self._sink is not None:
            sink, self._sink = self._sink, None
            sink.abort()

    # -- httptools callbacks -------------------------------------------------------------------------
    # No on_message_begin: a request starts at its first URL bytes (one callback less per request).
    def on_url(self, url: bytes) -> None:
        current = self._current
        if current is None:
            self._current = current = self.factory()
            current.url = url
            current.headers = []
            size = self._head_size = len(url)
        else:
            current.url += url
            size = self._head_size = self._head_size + len(url)
        if size > self.max_header_size:
            raise HttpError(431, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._current.headers.append((name, value))
        size = self._head_size = self._head_size + len(name) + len(value) + 4
        if size > self.max_header_size:
            raise HttpError(431, "header section too large")

    def on_headers_complete(self) -> None:
        parser = self._parser
        current = self._current
        method = current.method = parser.get_method()
        current.version = parser.get_http_version()
        current.keep_alive = parser.should_keep_alive()
        if method not in BODYLESS and self.on_head is not None:
            self._sink = self.on_head(current)

    def on_body(self, body: bytes) -> None:
        size = self._body_size = self._body_size + len(body)
        if size > self.max_body_size:
            raise HttpError(413, f"body larger than {self.max_body_size} bytes")
        if self._sink is not None:
            self._sink.write(body)
            return
        chunks = self._current.chunks
        if chunks is None:
            self._current.chunks = [body]
        else:
            chunks.append(body)

    def on_message_complete(self) -> None:
        current = self._current
        self._current = None
        if self._body_size or self._sink is not None:  # (nothing to do for a request without a body)
            self._body_size = 0
            if self._sink is not None:
                sink, self._sink = self._sink, None
                sink.close()
            elif current.chunks is not None:
                current.body = b"".join(current.chunks)
                current.chunks = None
        self.messages.append(current)


def declared_length(request: RawRequest) -> int | None:
    """The ``Content-Length`` of a request (llhttp has already checked it is a single number)."""
    value = request.header_value(b"content-length")
    return None if value is None else int(value)


def check_body_size(request: RawRequest, limit: int) -> None:
    """Raise 413 at once when the declared length is over ``limit`` (before any body is read)."""
    length = declared_length(request)
    if length is not None and length > limit:
        raise HttpError(413, f"declared body of {length} bytes is over the limit of {limit}")


def expects_continue(request: RawRequest) -> bool:
    value = request.header_value(b"expect")
    return value is not None and value.lower() == b"100-continue"


# -- responses --------------------------------------------------------------------------------------
STATUS_LINES: dict[int, str] = {code: f"HTTP/1.1 {code} {reason}\r\n" for code, reason in REASONS.items()}


def status_line(code: int, reason: str | None = None) -> str:
    """``HTTP/1.1 <code> <reason>\\r\\n`` (cached for the standard reasons)."""
    if reason is None:
        line = STATUS_LINES.get(code)
        if line is not None:
            return line
        reason = REASONS.get(code, "Unknown")
    if "\r" in reason or "\n" in reason:
        raise ValueError("reason phrase must not contain CR or LF")
    return f"HTTP/1.1 {code} {reason}\r\n"


def header_line(name: str, value: str) -> str:
    """``Name: value\\r\\n``; CR/LF in either refused (no response splitting)."""
    if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
        raise ValueError(f"invalid response header {name!r}: {value!r}")
    return f"{name}: {value}\r\n"


class DateHeader:
    """``Server`` and ``Date`` lines of every response, rebuilt at most once a second."""

    __slots__ = ("line", "raw", "second", "server")

    def __init__(self, server: str = "pyswoole"):
        self.server = server
        self.second = 0
        self.line = ""
        self.raw = b""
        self.refresh()

    def refresh(self) -> str:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.line = f"Server: {self.server}\r\nDate: {formatdate(now, usegmt=True)}\r\n"
            self.raw = self.line.encode()
        return self.line


def simple_response(
    status: int, body: bytes = b"", *, close: bool = True, extra: Iterable[str] = ()
) -> bytes:
    """A whole small response (errors the server answers itself)."""
    head = status_line(status) + "".join(extra)
    head += f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body
