"""multipart/form-data bodies parsed while they arrive: fields go to ``request.form``, files
stream to temporary files in ``upload_tmp_dir`` (memory stays flat whatever the upload size)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header

from pyswoole.protocol.http import HttpError, RawRequest

#: Largest form field (not file) kept in memory.
MAX_FIELD_SIZE = 1024 * 1024
UPLOAD_ERR_OK = 0
UPLOAD_ERR_PARTIAL = 3


def is_multipart(request: RawRequest) -> bool:
    value = request.header_value(b"content-type")
    return value is not None and value[:19].lower() == b"multipart/form-data"


class MultipartSink:
    """The body sink of one multipart request (see ``RequestParser.on_head``)."""

    def __init__(self, request: Any, tmp_dir: str):
        _, params = parse_options_header(request.header_value(b"content-type"))
        boundary = params.get(b"boundary")
        if not boundary:
            raise HttpError(400, "multipart body without a boundary")
        self.request = request
        self.tmp_dir = tmp_dir
        request.form = {}
        request.files = {}
        self._header_field = b""
        self._header_value = b""
        self._part_headers: dict[bytes, bytes] = {}
        self._name = ""
        self._filename: str | None = None
        self._file: Any = None
        self._size = 0
        self._value: list[bytes] = []
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
            },
        )

    def write(self, data: bytes) -> None:
        try:
            self.parser.write(data)
        except HttpError:
            raise
        except Exception as exc:
            raise HttpError(400, f"malformed multipart body: {exc}") from None

    def close(self) -> None:
        if self._file is not None:  # the body ended inside a file part
            self._finish_file(UPLOAD_ERR_PARTIAL)

    def abort(self) -> None:
        self.close()
        for info in self.request.files.values():
            with contextlib.suppress(OSError):
                os.unlink(info["tmp_name"])
        self.request.files = None

    # -- parser callbacks ------------------------------------------------------------------------------
    def _part_begin(self) -> None:
        self._part_headers = {}
        self._name = ""
        self._filename = None
        self._size = 0
        self._value = []

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._part_headers[self._header_field.lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._part_headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is not None:
            self._filename = os.path.basename(filename.decode("utf-8", "replace").replace("\\", "/"))
            self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in _finish_file
                prefix="swoole.upfile.", dir=self.tmp_dir, delete=False
            )

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if self._file is not None:
            self._file.write(data[start:end])
        else:
            if self._size > MAX_FIELD_SIZE:
                raise HttpError(413, f"form field {self._name!r} larger than {MAX_FIELD_SIZE} bytes")
            self._value.append(data[start:end])

    def _part_end(self) -> None:
        if self._file is not None:
            self._finish_file(UPLOAD_ERR_OK)
        elif self._name:
            self.request.form[self._name] = b"".join(self._value).decode("utf-8", "replace")

    def _finish_file(self, error: int) -> None:
        file, self._file = self._file, None
        file.close()
        self.request.files[self._name] = {
            "name": self._filename,
            "type": self._part_headers.get(b"content-type", b"application/octet-stream").decode("latin-1"),
            "tmp_name": file.name,
            "error": error,
            "size": self._size,
        }
