"""``Request``: Swoole's request object. Everything derived (headers dict, server dict, query,
cookies, form) is computed on first access only."""

from __future__ import annotations

import time
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from pyswoole.protocol.http import RawRequest

if TYPE_CHECKING:
    from pyswoole.http.connection import HttpConnection


def parse_query(query: str) -> dict[str, str]:
    """``a=1&b=2`` -> ``{"a": "1", "b": "2"}`` (the last of repeated keys wins, as in PHP)."""
    return dict(parse_qsl(query, keep_blank_values=True))


def parse_cookie(header: str) -> dict[str, str]:
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(header)
    except Exception:  # a malformed cookie header: keep what the simple split gives
        pairs = (part.split("=", 1) for part in header.split(";") if "=" in part)
        return {k.strip(): v.strip() for k, v in pairs}
    return {k: m.value for k, m in cookie.items()}


class Request(RawRequest):
    """One HTTP request, complete with its body (uploads are already in ``upload_tmp_dir``)."""

    # Defaults as class attributes, no __init__ (see RawRequest; conn, fd and files are fields).
    conn: HttpConnection | None
    fd: int
    files: dict[str, dict[str, Any]] | None
    _time: float = 0.0
    form: dict[str, str] | None = None
    _header: dict[str, str] | None = None
    _server: dict[str, Any] | None = None
    _get: dict[str, str] | None = None
    _cookie: dict[str, str] | None = None

    # -- Swoole's properties -------------------------------------------------------------------------
    @property
    def request_time(self) -> float:
        """When the request was taken up (read on first use: no clock read per request otherwise)."""
        if not self._time:
            self._time = time.time()
        return self._time

    @request_time.setter
    def request_time(self, value: float) -> None:
        self._time = value

    @property
    def header(self) -> dict[str, str]:
        """Request headers with lower-case names (repeated headers joined with ``, ``)."""
        header = self._header
        if header is None:
            header = self._header = {}
            for name, value in self.headers:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1").rstrip(" \t")
                header[key] = f"{header[key]}, {text}" if key in header else text
        return header

    @property
    def path(self) -> str:
        """The request path without the query string (``request_uri``)."""
        url = self.url
        cut = url.find(b"?")
        return (url if cut < 0 else url[:cut]).decode("latin-1")

    @property
    def query_string(self) -> str:
        url = self.url
        cut = url.find(b"?")
        return "" if cut < 0 else url[cut + 1 :].decode("latin-1")

    @property
    def server(self) -> dict[str, Any]:
        server = self._server
        if server is None:
            conn = self.conn
            path = self.path
            remote_addr, remote_port = conn.remote if conn is not None else ("", 0)
            server = self._server = {
                "request_method": self.get_method(),
                "request_uri": path,
                "path_info": path,
                "request_time": int(self.request_time),
                "request_time_float": self.request_time,
                "server_protocol": f"HTTP/{self.version}",
                "server_port": conn.port.port if conn is not None else 0,
                "remote_addr": remote_addr,
                "remote_port": remote_port,
                "master_time": int(self.request_time),
            }
            query = self.query_string
            if query:
                server["query_string"] = query
        return server

    @property
    def get(self) -> dict[str, str] | None:
        """Query parameters; None without a query string (as in Swoole)."""
        if self._get is None:
            query = self.query_string
            if not query:
                return None
            self._get = parse_query(query)
        return self._get

    @property
    def post(self) -> dict[str, str] | None:
        """Form fields of an urlencoded or multipart body (``http_parse_post``); None otherwise."""
        if self.form is None and self.body:
            conn = self.conn
            if conn is not None and not conn.options.parse_post:
                return None
            content_type = self.header.get("content-type", "")
            if content_type.startswith("application/x-www-form-urlencoded"):
                self.form = parse_query(self.body.decode("latin-1"))
        return self.form

    @property
    def cookie(self) -> dict[str, str] | None:
        if self._cookie is None:
            conn = self.conn
            if conn is not None and not conn.options.parse_cookie:
                return None
            value = self.header.get("cookie")
            if value is None:
                return None
            self._cookie = parse_cookie(value)
        return self._cookie

    def get_method(self) -> str:
        return self.method.decode("latin-1")

    getMethod = get_method

    def raw_content(self) -> bytes:
        """The request body as received (empty for multipart uploads, which went to files)."""
        return self.body

    rawContent = raw_content
    get_content = raw_content
    getContent = raw_content

    def get_data(self) -> bytes:
        """The whole request as received: request line, headers and body."""
        lines = [self.method + b" " + self.url + b" HTTP/" + self.version.encode()]
        lines += [name + b": " + value for name, value in self.headers]
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body

    getData = get_data

    def is_completed(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<Request fd={self.fd} {self.method.decode()} {self.url.decode('latin-1')}>"
