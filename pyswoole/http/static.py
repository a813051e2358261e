"""The static file handler (``enable_static_handler``): files under ``document_root`` answered
before the ``request`` callback, with MIME types, ETag/Last-Modified (304), single ranges
(206/416) and index files. Paths leaving the root (``..``, percent-encoded or not, absolute
paths, symlinks pointing outside) are refused with 403."""

from __future__ import annotations

import html
import mimetypes
import os
import stat
from collections.abc import Sequence
from email.utils import formatdate, parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from pyswoole.http.request import Request
    from pyswoole.http.response import Response

DEFAULT_INDEX_FILES = ("index.html",)


class StaticHandler:
    def __init__(
        self,
        document_root: str,
        locations: Sequence[str] | None = None,
        index_files: Sequence[str] | None = None,
        autoindex: bool = False,
    ):
        self.root = os.path.realpath(document_root)
        self.locations = tuple(locations) if locations else None
        # the same prefixes as bytes, to turn away most requests before the URL is decoded (the
        # path is the URL's latin-1 decoding up to the query, so a path that starts with a
        # location belongs to a URL that starts with its bytes)
        self.url_prefixes = tuple(loc.encode("latin-1", "ignore") for loc in locations) if locations else None
        self.index_files = tuple(index_files) if index_files else DEFAULT_INDEX_FILES
        self.autoindex = autoindex

    def serve(self, request: Request, response: Response) -> bool:
        """Answer ``request`` if it names a static file; False lets the ``request`` callback run."""
        if request.method not in (b"GET", b"HEAD"):
            return False
        if self.url_prefixes is not None and not request.url.startswith(self.url_prefixes):
            return False
        raw_path = request.path
        if self.locations is not None and not raw_path.startswith(self.locations):
            return False
        path = unquote(raw_path)
        if "\0" in path or "\\" in path or ".." in path.split("/"):
            return self._refuse(response)
        full = os.path.realpath(os.path.join(self.root, path.lstrip("/")))
        if full != self.root and not full.startswith(self.root + os.sep):
            return self._refuse(response)
        try:
            info = os.stat(full)
        except OSError:
            return False
        if stat.S_ISDIR(info.st_mode):
            for name in self.index_files:
                index = os.path.join(full, name)
                try:
                    info = os.stat(index)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    full = index
                    break
            else:
                if self.autoindex:
                    return self._listing(full, raw_path, response)
                return False
        if not stat.S_ISREG(info.st_mode):
            return False
        return self._send(full, info, request, response)

    @staticmethod
    def _refuse(response: Response) -> bool:
        response.status(403)
        response.header("Content-Type", "text/plain")
        response.end(b"403 Forbidden\n")
        return True

    def _send(self, full: str, info: os.stat_result, request: Request, response: Response) -> bool:
        size = info.st_size
        etag = f'"{int(info.st_mtime):x}-{size:x}"'
        last_modified = formatdate(int(info.st_mtime), usegmt=True)
        response.header("ETag", etag)
        response.header("Last-Modified", last_modified)
        response.header("Accept-Ranges", "bytes")
        if _not_modified(request, etag, int(info.st_mtime)):
            response.status(304)
            response.end()
            return True
        response.header("Content-Type", mimetypes.guess_type(full)[0] or "application/octet-stream")
        offset, count = 0, size
        byte_range = request.header_value(b"range")
        if byte_range is not None and request.header_value(b"if-range") in (None, etag.encode()):
            parsed = _parse_range(byte_range.decode("latin-1"), size)
            if parsed is None:
                response.status(416)
                response.header("Content-Range", f"bytes */{size}")
                response.end()
                return True
            if parsed != (0, size):
                offset, count = parsed
                response.status(206)
                response.header("Content-Range", f"bytes {offset}-{offset + count - 1}/{size}")
        try:
            fd = os.open(full, os.O_RDONLY)
        except OSError:
            return False
        response.send_file_range(fd, offset, count)
        return True

    def _listing(self, directory: str, raw_path: str, response: Response) -> bool:
        base = raw_path if raw_path.endswith("/") else raw_path + "/"
        items = []
        for name in sorted(os.listdir(directory)):
            suffix = "/" if os.path.isdir(os.path.join(directory, name)) else ""
            items.append(f'<li><a href="{quote(base + name)}{suffix}">{html.escape(name)}{suffix}</a></li>')
        title = html.escape(unquote(base))
        body = f"<html><head><title>Index of {title}</title></head><body><h1>Index of {title}</h1><ul>"
        response.header("Content-Type", "text/html; charset=utf-8")
        response.end(body + "".join(items) + "</ul></body></html>")
        return True


def _not_modified(request: Request, etag: str, mtime: int) -> bool:
    if_none_match = request.header_value(b"if-none-match")
    if if_none_match is not None:
        tags = [t.strip() for t in if_none_match.decode("latin-1").split(",")]
        return "*" in tags or etag in tags or f"W/{etag}" in tags
    if_modified_since = request.header_value(b"if-modified-since")
    if if_modified_since is not None:
        try:
            return mtime <= parsedate_to_datetime(if_modified_since.decode("latin-1")).timestamp()
        except (TypeError, ValueError):
            return False
    return False


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` -> ``(offset, count)``; None if unsatisfiable.
    Several ranges are answered with the whole file (``(0, size)``)."""
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return 0, size
    first, _, last = spec.strip().partition("-")
    try:
        if not first:
            suffix = int(last)
            if suffix <= 0:
                return None
            return max(0, size - suffix), min(suffix, size)
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return 0, size
    if start >= size or end < start:
        return None
    end = min(end, size - 1)
    return start, end - start + 1
