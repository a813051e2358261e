"""``pyswoole.http.Server``: the core ``Server`` whose ports speak HTTP/1.1 (``open_http_protocol``)
and run the ``request`` callback with a ``Request`` and a ``Response``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pyswoole.http.compression import DEFAULT_TYPES
from pyswoole.http.connection import HttpConnection
from pyswoole.http.static import StaticHandler
from pyswoole.server import server as core
from pyswoole.server import settings
from pyswoole.server.port import Port
from pyswoole.server.settings import BOOL, INT, NUMBER, STR, Setting

_LIST = (list, tuple)


def _level(value: Any) -> str | None:
    return None if 0 <= value <= 11 else "must be 0..9 (gzip) or 0..11 (brotli)"


def _path_list(value: Any) -> str | None:
    return None if all(isinstance(v, str) for v in value) else "must be a list of str"


#: HTTP settings (Swoole's names); all may differ per port.
HTTP_SETTINGS: dict[str, Setting] = {
    "open_http_protocol": Setting(BOOL, True, port=True),
    "http_parse_post": Setting(BOOL, True, port=True),
    "http_parse_cookie": Setting(BOOL, True, port=True),
    "http_parse_files": Setting(BOOL, True, port=True),
    "http_compression": Setting(BOOL, True, port=True),
    "http_compression_level": Setting(INT, 1, _level, port=True),
    "compression_min_length": Setting(INT, 20, settings._not_negative, port=True),
    "http_compression_types": Setting(_LIST, None, _path_list, port=True),
    "upload_tmp_dir": Setting(STR, "/tmp", port=True),
    "document_root": Setting(STR, None, port=True),
    "enable_static_handler": Setting(BOOL, False, port=True),
    "static_handler_locations": Setting(_LIST, None, _path_list, port=True),
    "http_index_files": Setting(_LIST, None, _path_list, port=True),
    "http_autoindex": Setting(BOOL, False, port=True),
    "http_max_header_size": Setting(INT, 64 * 1024, settings._positive, port=True),
    "http_header_timeout": Setting(NUMBER, 60.0, settings._positive, port=True),
}


@dataclass(frozen=True)
class HttpOptions:
    """What one port's connections need from the settings, computed once per port per worker."""

    handler: Callable[..., Any]
    #: Start the handler in place, with the automatic end() and 500 (False: an ``async`` handler
    #: that finishes every response itself, run in a Task of its own, as ASGI frameworks need).
    eager: bool
    parse_post: bool
    parse_cookie: bool
    parse_files: bool
    compression: bool
    compression_level: int
    compression_min_length: int
    compression_types: tuple[str, ...]
    upload_tmp_dir: str
    max_body_size: int
    max_header_size: int
    header_timeout: float
    buffer_output_size: int
    static: StaticHandler | None
    #: HttpConnection._fast_route() by connection class: one tuple that all the port's connections
    #: share, so that reading it per request touches memory that is already in the CPU cache.
    routes: dict[type, Any] = field(default_factory=dict, compare=False, repr=False)


class Server(core.Server):
    """An HTTP server: ``@server.on("request")`` receives ``(request, response)``."""

    SETTINGS: ClassVar[dict[str, Setting]] = {**settings.SETTINGS, **HTTP_SETTINGS}
    EVENTS: ClassVar[dict[str, int]] = {**core.EVENTS, "request": 2}
    TLS_FROM_SETTINGS = True  # an ssl_cert_file makes a port HTTPS, with or without the SSL flag
    TLS_ALPN = ("http/1.1",)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._http_options: dict[int, HttpOptions] = {}

    def start(self) -> bool:
        for port in self.ports:
            if port.is_stream and port.settings["open_http_protocol"] and "request" not in self.callbacks:
                raise RuntimeError("an HTTP server needs a 'request' callback: use @server.on('request')")
        return super().start()

    def http_options(self, port: Port) -> HttpOptions:
        options = self._http_options.get(id(port))
        if options is None:
            options = self._http_options[id(port)] = self._make_options(port)
        return options

    def _make_options(self, port: Port) -> HttpOptions:
        s = port.settings
        static = None
        if s["enable_static_handler"] and s["document_root"]:
            static = StaticHandler(
                s["document_root"], s["static_handler_locations"], s["http_index_files"], s["http_autoindex"]
            )
        return HttpOptions(
            handler=self.callbacks["request"],
            eager=getattr(self.callbacks["request"], "eager", True),
            parse_post=s["http_parse_post"],
            parse_cookie=s["http_parse_cookie"],
            parse_files=s["http_parse_files"],
            compression=s["http_compression"],
            compression_level=s["http_compression_level"],
            compression_min_length=s["compression_min_length"],
            compression_types=tuple(s["http_compression_types"] or DEFAULT_TYPES),
            upload_tmp_dir=s["upload_tmp_dir"],
            max_body_size=s["package_max_length"],
            max_header_size=s["http_max_header_size"],
            header_timeout=float(s["http_header_timeout"]),
            buffer_output_size=s["buffer_output_size"],
            static=static,
        )

    def connection_class_for(self, port: Port) -> Any:
        return HttpConnection if port.settings["open_http_protocol"] else self.connection_class
