"""HTTP/1.1 without I/O: parsed requests, limits, and response heads.

``RawRequest`` is what the request parser (``pyswoole.http.parser``, llhttp in C) fills in;
``HttpError`` carries the status to answer to bad input before closing (400 malformed, 431 head
too large, 413 body too large). ``status_line``, ``header_line`` and ``simple_response`` build
response heads and refuse CR/LF where they would split a response.
"""

from __future__ import annotations

import http
import time
from collections.abc import Iterable
from email.utils import formatdate
from typing import Protocol

from pyswoole.protocol._request import RequestCore

#: Reason phrases by status code.
REASONS: dict[int, str] = {s.value: s.phrase for s in http.HTTPStatus}
REASONS.setdefault(418, "I'm a teapot")

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


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


class RawRequest(RequestCore):
    """A parsed request: what the wire said, nothing derived yet.

    Its fields live in ``RequestCore`` (C), which the parser (``pyswoole.http.parser``) fills in:
    ``url``, ``headers`` (``(name, value)`` bytes pairs), ``method`` (``b"GET"``), ``version``
    (``"1.1"``), ``keep_alive`` (True), ``upgrade`` (False), ``body`` (``b""``), and for the server
    ``conn`` (None), ``fd`` (0) and ``files`` (None); a new request holds the defaults in brackets.
    """

    def header_value(self, lower_name: bytes) -> bytes | None:
        """The last value of a header (``lower_name`` in lower case), or None."""
        found = None
        for name, value in self.headers:
            if len(name) == len(lower_name) and name.lower() == lower_name:
                found = value
        return found


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
