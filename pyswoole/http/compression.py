"""Response compression (``http_compression``): brotli when installed, gzip, deflate."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

try:
    import brotli
except ImportError:  # pragma: no cover - optional
    brotli = None

if TYPE_CHECKING:
    from pyswoole.http.response import Response

#: Content types compressed by default (prefixes).
DEFAULT_TYPES = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/xhtml+xml",
    "image/svg+xml",
)


def accepted(accept_encoding: str) -> str | None:
    """The best encoding we offer that the client accepts (``q=0`` refuses)."""
    offered = {}
    for item in accept_encoding.lower().split(","):
        name, _, params = item.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        offered[name.strip()] = quality
    for encoding in ("br", "gzip", "deflate"):
        if encoding == "br" and brotli is None:
            continue
        if offered.get(encoding, offered.get("*", 0.0)) > 0:
            return encoding
    return None


def compress(data: bytes, encoding: str, level: int) -> bytes:
    if encoding == "br":
        return brotli.compress(data, quality=min(max(level, 0), 11))
    if encoding == "gzip":
        compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, 15)
    return compressor.compress(data) + compressor.flush()


def maybe_compress(response: Response, data: bytes, options: Any) -> tuple[bytes, str]:
    """``(body, extra header lines)``: the body compressed if the client, the content type and
    the response allow it."""
    request = response.request
    headers = response.headers or {}
    if request is None or "Content-Encoding" in headers:
        return data, ""
    content_type = headers.get("Content-Type", "Content-Type: text/html\r\n")[14:]
    if not content_type.startswith(options.compression_types):
        return data, ""
    accept = request.header_value(b"accept-encoding")
    if not accept:
        return data, ""
    encoding = accepted(accept.decode("latin-1"))
    if encoding is None:
        return data, ""
    return compress(
        data, encoding, options.compression_level
    ), f"Content-Encoding: {encoding}\r\nVary: Accept-Encoding\r\n"
