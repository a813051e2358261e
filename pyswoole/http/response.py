"""``Response``: Swoole's response object. ``end()`` builds the whole response (head and body) as
one bytes object and hands it to the connection in one write."""

from __future__ import annotations

import mimetypes
import os
import time
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pyswoole.http import compression
from pyswoole.http._response import ResponseCore, configure
from pyswoole.protocol.http import STATUS_LINES, DateHeader, header_line, status_line

if TYPE_CHECKING:
    pass

FRESH, STREAMING, ENDED = 0, 1, 2
LAST_CHUNK = b"0\r\n\r\n"
#: ``Server`` and ``Date`` lines shared by every response of the process (refreshed each second).
DATE = DateHeader()
_CANONICAL: dict[str, str] = {}
_IGNORED = frozenset(("Content-Length", "Transfer-Encoding"))
_NO_BODY_STATUS = frozenset((204, 304))
#: Files up to this size are read and sent with the head in one write; larger ones stream.
SENDFILE_INLINE = 64 * 1024
configure(_CANONICAL, DATE, STATUS_LINES[200].encode(), compression.maybe_compress)  # for ResponseCore


def canonical(name: str) -> str:
    """``content-type`` -> ``Content-Type`` (Swoole's header name formatting), cached; a name
    with CR, LF or a colon raises ``ValueError``."""
    found = _CANONICAL.get(name)
    if found is None:
        header_line(name, "")  # validates the name
        found = "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))
        if len(_CANONICAL) < 4096:
            _CANONICAL[name] = found
    return found


class Response(ResponseCore):
    """The answer to one request. A handler that returns without ``end()`` gets one.

    Its fields (``conn``, ``request``, ``status_code``, ``reason``, ``headers``, ``state``,
    ``keep_alive``, ``detached``) live in ``ResponseCore`` (C), which also does ``header()`` for a
    valid cached name and ``end()`` for a keep-alive HTTP/1.1 200 with its Content-Type
    (``compression.maybe_compress`` decides on compression there too); everything else comes
    here (``_set_header``, ``_end``).
    """

    @property
    def fd(self) -> int:
        return self.conn.fd if self.conn is not None else 0

    # -- head ----------------------------------------------------------------------------------------
    def status(self, code: int, reason: str | None = None) -> bool:
        if self.state != FRESH:
            return False
        self.status_code = int(code)
        self.reason = reason
        return True

    setStatusCode = status

    def _set_header(self, key: str, value: Any, format: bool = True) -> bool:
        """``header()``: set (replace) a response header; ``Content-Length``/``Transfer-Encoding``
        are the server's to set and are ignored."""
        if self.state != FRESH:
            return False
        if format:
            key = _CANONICAL.get(key) or canonical(key)  # cached names are valid names
        else:
            header_line(key, "")
        if key in _IGNORED:
            return False
        headers = self.headers
        if headers is None:
            headers = self.headers = {}
        if type(value) is not str:
            if isinstance(value, (list, tuple)):
                headers[key] = "".join(header_line(key, str(v)) for v in value)
                return True
            value = str(value)
        if "\n" in value or "\r" in value:
            raise ValueError(f"invalid value for response header {key!r}: {value!r}")
        headers[key] = f"{key}: {value}\r\n"
        if key == "Connection" and value.lower() == "close":
            self.keep_alive = False
        return True

    header = ResponseCore.header
    set_header = header
    setHeader = header

    def cookie(
        self,
        name: str,
        value: str = "",
        expires: int = 0,
        path: str = "/",
        domain: str = "",
        secure: bool = False,
        httponly: bool = False,
        samesite: str = "",
        priority: str = "",
        *,
        encode: bool = True,
    ) -> bool:
        """Add a ``Set-Cookie`` header (``value`` is URL-encoded; ``raw_cookie`` does not)."""
        if self.state != FRESH:
            return False
        if not name or any(c in name for c in "=,; \t\r\n\013\014"):
            raise ValueError(f"invalid cookie name {name!r}")
        text = quote(value, safe="") if encode else value
        parts = [f"{name}={text}" if value else f"{name}=deleted"]
        if not value:
            parts.append("expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0")
        elif expires:
            parts.append(f"expires={formatdate(expires, usegmt=True)}")
            parts.append(f"Max-Age={max(0, int(expires - time.time()))}")
        if path:
            parts.append(f"path={path}")
        if domain:
            parts.append(f"domain={domain}")
        if secure:
            parts.append("secure")
        if httponly:
            parts.append("HttpOnly")
        if samesite:
            parts.append(f"SameSite={samesite}")
        if priority:
            parts.append(f"Priority={priority}")
        line = header_line("Set-Cookie", "; ".join(parts))
        headers = self.headers
        if headers is None:
            headers = self.headers = {}
        headers["Set-Cookie"] = headers.get("Set-Cookie", "") + line
        return True

    setCookie = cookie

    def raw_cookie(self, name: str, value: str = "", *args: Any, **kwargs: Any) -> bool:
        return self.cookie(name, value, *args, encode=False, **kwargs)

    rawCookie = raw_cookie

    def _head(self, extra: str) -> bytes:
        """Status line, Server/Date, the handler's headers, ``extra`` and the blank line."""
        code = self.status_code
        if self.reason:
            status = status_line(code, self.reason)
        else:
            status = STATUS_LINES.get(code) or status_line(code)
        headers = self.headers
        if headers is None:
            lines = "Content-Type: text/html\r\n"
        elif "Content-Type" in headers or any(k.lower() == "content-type" for k in headers):
            lines = "".join(headers.values())
        else:
            lines = "".join(headers.values()) + "Content-Type: text/html\r\n"
        if not self.keep_alive:
            return f"{status}{DATE.line}{lines}{extra}Connection: close\r\n\r\n".encode()
        request = self.request
        if request is not None and request.version == "1.0":
            return f"{status}{DATE.line}{lines}{extra}Connection: keep-alive\r\n\r\n".encode()
        return f"{status}{DATE.line}{lines}{extra}\r\n".encode()

    # -- body ----------------------------------------------------------------------------------------
    end = ResponseCore.end

    def _end(self, data: bytes | str = b"") -> bool:
        """``end()``: send the response (or the last chunk of a streamed one) and finish it."""
        conn = self.conn
        if self.state != FRESH or conn is None:
            return self._end_stream(data)
        if type(data) is str:
            data = data.encode()
        self.state = ENDED
        code = self.status_code
        if code in _NO_BODY_STATUS or code < 200:
            return conn.finish_response(self, self._head(""))
        options = conn.options
        if options.compression and len(data) >= options.compression_min_length:
            data, extra = compression.maybe_compress(self, data, options)
            head = self._head(f"{extra}Content-Length: {len(data)}\r\n")
        else:
            head = self._head(f"Content-Length: {len(data)}\r\n")
        request = self.request
        if request is not None and request.method == b"HEAD":
            return conn.finish_response(self, head)
        return conn.finish_response(self, head + data)

    def _end_stream(self, data: bytes | str) -> bool:
        """``end()`` of a streamed response: the last chunk (nothing if ended or detached from a
        connection)."""
        conn = self.conn
        if self.state == ENDED or conn is None:
            return False
        if type(data) is str:
            data = data.encode()
        self.state = ENDED
        if self.request is not None and self.request.version == "1.0":
            payload = data
        else:
            payload = (b"%x\r\n%s\r\n%s" % (len(data), data, LAST_CHUNK)) if data else LAST_CHUNK
        return conn.finish_response(self, payload)

    def write(self, data: bytes | str) -> bool:
        """Send a piece of the body now (chunked transfer encoding); False if the connection is gone."""
        conn = self.conn
        if self.state == ENDED or conn is None:
            return False
        if type(data) is str:
            data = data.encode()
        if not data:
            return True
        http10 = self.request is not None and self.request.version == "1.0"
        payload = data if http10 else b"%x\r\n%s\r\n" % (len(data), data)
        if self.state == FRESH:
            self.state = STREAMING
            if http10:
                self.keep_alive = False
                payload = self._head("") + payload
            else:
                payload = self._head("Transfer-Encoding: chunked\r\n") + payload
        return conn.write(payload)

    def sendfile(self, filename: str | os.PathLike[str], offset: int = 0, length: int = 0) -> bool:
        """Send (part of) a file as the whole body; ``length`` 0 means up to the end."""
        conn = self.conn
        if self.state != FRESH or conn is None:
            return False
        try:
            fd = os.open(filename, os.O_RDONLY)
        except OSError:
            return False
        try:
            size = os.fstat(fd).st_size
            if offset < 0 or offset > size:
                os.close(fd)
                return False
            count = size - offset if length <= 0 else min(length, size - offset)
            headers = self.headers
            if headers is None or "Content-Type" not in headers:
                self.header(
                    "Content-Type", mimetypes.guess_type(str(filename))[0] or "application/octet-stream"
                )
            return self.send_file_range(fd, offset, count)
        except BaseException:
            os.close(fd)
            raise

    def send_file_range(self, fd: int, offset: int, count: int) -> bool:
        """Head with ``Content-Length: count``, then ``count`` bytes of open file ``fd`` from
        ``offset``; takes ownership of ``fd``."""
        conn = self.conn
        assert conn is not None
        self.state = ENDED
        head = self._head(f"Content-Length: {count}\r\n")
        if (self.request is not None and self.request.method == b"HEAD") or count == 0:
            os.close(fd)
            return conn.finish_response(self, head)
        if count <= SENDFILE_INLINE:
            try:
                body = os.pread(fd, count, offset)
            finally:
                os.close(fd)
            return conn.finish_response(self, head + body)
        return conn.stream_file(self, head, fd, offset, count)

    def redirect(self, location: str, http_code: int = 302) -> bool:
        self.status(http_code)
        self.header("Location", location)
        return self.end()

    # -- life cycle ------------------------------------------------------------------------------------
    def detach(self) -> bool:
        """Keep the connection's turn for this response after the handler returns; finish it later
        from anywhere in this worker, e.g. with ``Response.create(fd)``."""
        if self.state == ENDED or self.detached:
            return False
        self.detached = True
        return True

    @classmethod
    def create(cls, fd: int) -> Response | bool:
        """A response for connection ``fd`` of this worker (after ``detach()``); False if it is gone."""
        from pyswoole.http.connection import live_connection

        conn = live_connection(fd)
        if conn is None:
            return False
        detached = conn.active
        if detached is None or not detached.detached:
            return cls(conn, None)
        # Take over the detached response's turn on the connection, with a fresh head.
        response = cls(conn, detached.request)
        response.keep_alive = detached.keep_alive
        conn.active = response
        detached.state = ENDED
        return response

    def is_writable(self) -> bool:
        conn = self.conn
        return self.state != ENDED and conn is not None and not conn.transport.is_closing()

    isWritable = is_writable

    def close(self) -> bool:
        """Close the connection without (finishing) the response."""
        conn = self.conn
        if conn is None or self.state == ENDED:
            return False
        self.state = ENDED
        conn.close()
        return True

    def __repr__(self) -> str:
        return f"<Response fd={self.fd} status={self.status_code} state={self.state}>"
