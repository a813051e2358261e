"""Stream framing: split a TCP byte stream into whole packets (Swoole's EOF and length protocols).

Every framer is sans-IO: ``feed(data)`` takes whatever bytes the transport delivered and returns
the list of complete packets (possibly empty); incomplete data stays buffered. A protocol violation
(a packet over ``package_max_length``, a negative or oversized declared length) raises
``FramingError``; the caller closes that one connection. Servers and clients share these classes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any, Protocol

#: Swoole's ``package_length_type`` pack codes and the matching ``struct`` formats.
LENGTH_TYPES: dict[str, str] = {
    "c": "b",
    "C": "B",
    "s": "=h",
    "S": "=H",
    "n": ">H",
    "N": ">I",
    "v": "<H",
    "V": "<I",
    "l": "=i",
    "L": "=I",
    "q": "=q",
    "Q": "=Q",
}

DEFAULT_MAX_LENGTH = 2 * 1024 * 1024


class FramingError(ValueError):
    """The peer broke the framing rules; the connection must be closed."""


class Framer(Protocol):
    """What every framer offers."""

    def feed(self, data: bytes) -> list[bytes]: ...

    def take_buffer(self) -> bytes: ...

    @property
    def buffered(self) -> int: ...


class _BufferedFramer:
    """What every framer shares: the buffer of an incomplete packet."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def take_buffer(self) -> bytes:
        """Remove and return the bytes of the incomplete packet (a connection changing hands)."""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


class EofFramer(_BufferedFramer):
    """Packets end with ``eof``.

    With ``split=True`` (``open_eof_split``) each packet is delivered alone, terminator included.
    With ``split=False`` (``open_eof_check``) data is delivered once the buffer ends with the
    terminator, as Swoole does: one delivery may then hold several packets.
    """

    __slots__ = ("eof", "max_length", "split")

    def __init__(self, eof: bytes = b"\r\n", *, split: bool = True, max_length: int = DEFAULT_MAX_LENGTH):
        if not eof:
            raise ValueError("package_eof must not be empty")
        self.eof = eof
        self.split = split
        self.max_length = max_length
        super().__init__()

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        if not buffer and data.endswith(self.eof) and (not self.split or data.count(self.eof) == 1):
            if len(data) > self.max_length:
                raise FramingError(
                    f"packet of {len(data)} bytes exceeds package_max_length {self.max_length}"
                )
            return [data]
        buffer += data
        eof = self.eof
        if not self.split:
            if not buffer.endswith(eof):
                self._check_limit()
                return []
            packet = bytes(buffer)
            buffer.clear()
            if len(packet) > self.max_length:
                raise FramingError(
                    f"data of {len(packet)} bytes exceeds package_max_length {self.max_length}"
                )
            return [packet]
        packets: list[bytes] = []
        start = 0
        eof_len = len(eof)
        while True:
            end = buffer.find(eof, start)
            if end < 0:
                break
            end += eof_len
            if end - start > self.max_length:
                raise FramingError(
                    f"packet of {end - start} bytes exceeds package_max_length {self.max_length}"
                )
            packets.append(bytes(buffer[start:end]))
            start = end
        if start:
            del buffer[:start]
        self._check_limit()
        return packets

    def _check_limit(self) -> None:
        if len(self._buffer) > self.max_length:
            raise FramingError(
                f"no package_eof within package_max_length {self.max_length} ({len(self._buffer)} bytes buffered)"
            )


class LengthFramer(_BufferedFramer):
    """Packets carry their length in a fixed header (``open_length_check``).

    A packet is ``body_offset + length`` bytes long, where ``length`` is read at ``length_offset``
    with the pack code ``length_type``. ``length_func(buffer) -> int`` replaces that rule: it
    returns the whole packet length, 0 while more bytes are needed, or a negative value for an
    invalid packet.
    """

    __slots__ = ("_header", "_unpack", "body_offset", "length_func", "length_offset", "max_length")

    def __init__(
        self,
        length_type: str = "N",
        length_offset: int = 0,
        body_offset: int = 4,
        *,
        max_length: int = DEFAULT_MAX_LENGTH,
        length_func: Callable[[bytes], int] | None = None,
    ):
        if length_type not in LENGTH_TYPES:
            raise ValueError(
                f"package_length_type must be one of {''.join(LENGTH_TYPES)}, not {length_type!r}"
            )
        if length_offset < 0 or body_offset < 0:
            raise ValueError("package_length_offset and package_body_offset must not be negative")
        fmt = struct.Struct(LENGTH_TYPES[length_type])
        self._unpack = fmt.unpack_from
        self._header = length_offset + fmt.size
        self.length_offset = length_offset
        self.body_offset = body_offset
        self.max_length = max_length
        self.length_func = length_func
        super().__init__()

    def _packet_length(self, data: bytes | bytearray, start: int) -> int:
        """Whole length of the packet starting at ``start``; 0 if the header is incomplete."""
        available = len(data) - start
        if self.length_func is not None:
            total = self.length_func(bytes(data[start:]) if start else bytes(data))
            if total < 0:
                raise FramingError(f"package_length_func rejected the packet ({total})")
        else:
            if available < self._header:
                return 0
            length = self._unpack(data, start + self.length_offset)[0]
            if length < 0:
                raise FramingError(f"negative packet length {length}")
            total = self.body_offset + length
        if total > self.max_length:
            raise FramingError(f"packet of {total} bytes exceeds package_max_length {self.max_length}")
        return total

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        if not buffer and self.length_func is None and len(data) >= self._header:
            # Fast path: the chunk holds exactly one whole packet (the common case).
            length = self._unpack(data, self.length_offset)[0]
            if length >= 0 and self.body_offset + length == len(data) <= self.max_length:
                return [data]
        buffer += data
        packets: list[bytes] = []
        start = 0
        size = len(buffer)
        while start < size:
            total = self._packet_length(buffer, start)
            if not total or start + total > size:
                break
            packets.append(bytes(buffer[start : start + total]))
            start += total
        if start:
            del buffer[:start]
        return packets


def make_framer(settings: Mapping[str, Any]) -> EofFramer | LengthFramer | None:
    """The framer that Swoole's settings ask for, or None for a raw stream."""
    max_length = settings.get("package_max_length", DEFAULT_MAX_LENGTH)
    if settings.get("open_length_check"):
        return LengthFramer(
            settings.get("package_length_type", "N"),
            settings.get("package_length_offset", 0),
            settings.get("package_body_offset", 4),
            max_length=max_length,
            length_func=settings.get("package_length_func"),
        )
    if settings.get("open_eof_split") or settings.get("open_eof_check"):
        eof = settings.get("package_eof", b"\r\n")
        if isinstance(eof, str):
            eof = eof.encode()
        return EofFramer(eof, split=bool(settings.get("open_eof_split")), max_length=max_length)
    return None
