"""WebSocket (RFC 6455) and permessage-deflate (RFC 7692), sans-IO, for servers and clients.

Three parts, none of which touches a socket:

* the opening handshake: ``accept_key``, ``validate_request``, ``select_subprotocol``,
  ``negotiate_deflate`` and ``server_handshake`` for the server side; ``client_request`` and
  ``validate_response`` for the client side. Failures raise ``HandshakeError`` with the HTTP status
  the server should answer;
* ``WebSocketCodec``: one per connection. ``feed(data)`` takes whatever bytes arrived and returns
  the events they completed: ``Frame`` for messages (``str`` for text, ``bytes`` for binary), pings
  and pongs, ``CloseFrame`` for the peer's close frame and, last, a ``ProtocolError`` carrying the
  close code to fail the connection with. ``encode``/``close`` build outgoing frames (masked in the
  client role, compressed when asked and negotiated);
* ``encode_frame``/``Frame.pack``: one frame as bytes, which a server may write to any number of
  connections (broadcast).

Constants keep Swoole's names: ``OPCODE_*``, ``FLAG_*`` (``Frame.flags``) and ``CLOSE_*``.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from websockets.frames import apply_mask  # websockets' C implementation when built (speedups)

from pyswoole.protocol._websocket import FrameBase, pack, parse_frames, set_frame_class
from pyswoole.protocol.framing import DEFAULT_MAX_LENGTH

OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA

# Frame flags, with Swoole's values (SWOOLE_WEBSOCKET_FLAG_*).
FLAG_FIN = 1
FLAG_COMPRESS = 2
FLAG_RSV1 = 4
FLAG_RSV2 = 8
FLAG_RSV3 = 16
FLAG_MASK = 32
FIN = FLAG_FIN

# Close codes (Swoole's WEBSOCKET_CLOSE_*).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_DATA_ERROR = 1003
CLOSE_STATUS_ERROR = 1005  # no status code in the close frame; never sent
CLOSE_ABNORMAL = 1006  # connection lost without a close frame; never sent
CLOSE_MESSAGE_ERROR = 1007
CLOSE_POLICY_ERROR = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_EXTENSION_MISSING = 1010
CLOSE_SERVER_ERROR = 1011
CLOSE_TLS = 1015  # never sent

#: Codes a close frame may carry (RFC 6455 7.4 and the IANA registry), besides 3000-4999.
SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_CONTROL_PAYLOAD = 125

_unpack_16 = struct.Struct("!H").unpack_from
_unpack_64 = struct.Struct("!Q").unpack_from
_pack_16 = struct.Struct("!BBH").pack
_pack_64 = struct.Struct("!BBQ").pack
_pack_close_code = struct.Struct("!H").pack
_utf8_decoder = codecs.getincrementaldecoder("utf-8")
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


class Frame(FrameBase):
    """A WebSocket message or control frame (Swoole's ``Swoole\\WebSocket\\Frame``).

    ``data`` is ``str`` for text and ``bytes`` for everything else; ``fd`` is the connection's
    number as given to the codec; ``flags`` holds ``FLAG_FIN`` and ``FLAG_COMPRESS`` (the message
    arrived compressed). The fields live in the C base class, which decodes most frames.
    """

    __slots__ = ()

    def __init__(
        self, data: str | bytes = b"", opcode: int = OPCODE_TEXT, flags: int = FLAG_FIN, fd: int = 0
    ):
        self.data = data
        self.opcode = opcode
        self.flags = flags
        self.fd = fd

    @property
    def finish(self) -> bool:
        """True for a whole message or the last fragment of one."""
        return bool(self.flags & FLAG_FIN)

    def __reduce__(self) -> tuple:  # the fields live in C, out of pickle's sight
        return type(self), (self.data, self.opcode, self.flags, self.fd)

    @staticmethod
    def pack(data: str | bytes, opcode: int = OPCODE_TEXT, flags: int = FLAG_FIN) -> bytes:
        """One unmasked (server) frame.

        ``FLAG_COMPRESS`` deflates a whole (``FLAG_FIN``) text or binary message without context
        (RFC 7692), so any peer that negotiated permessage-deflate with a 15-bit server window
        can inflate it.
        """
        payload = data.encode() if isinstance(data, str) else bytes(data)
        whole_message = flags & FLAG_FIN and opcode in (OPCODE_TEXT, OPCODE_BINARY)
        compress = bool(whole_message and flags & FLAG_COMPRESS)
        if compress:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            payload = (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        return encode_frame(payload, opcode, fin=bool(flags & FLAG_FIN), rsv1=compress)

    def __repr__(self) -> str:
        data = self.data if len(self.data) <= 40 else self.data[:40]
        return f"{type(self).__name__}(fd={self.fd}, opcode={self.opcode}, flags={self.flags}, data={data!r})"


set_frame_class(Frame)


class CloseFrame(Frame):
    """The peer's close frame: ``code`` (``CLOSE_STATUS_ERROR`` when it had none) and ``reason``."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int = CLOSE_NORMAL, reason: str = "", data: bytes = b"", fd: int = 0):
        super().__init__(data, OPCODE_CLOSE, FLAG_FIN, fd)
        self.code = code
        self.reason = reason

    def __reduce__(self) -> tuple:
        return type(self), (self.code, self.reason, self.data, self.fd)


class ProtocolError(Exception):
    """The peer broke the protocol: fail the connection with close ``code``."""

    def __init__(self, code: int, reason: str):
        super().__init__(f"{reason} (close code {code})")
        self.code = code
        self.reason = reason


class HandshakeError(Exception):
    """The opening handshake failed; a server answers with ``status`` and ``headers``."""

    def __init__(self, reason: str, status: int = 400, headers: Sequence[tuple[str, str]] = ()):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.headers = list(headers)


class _MaskKeys:
    """Masking keys from the OS's random source, fetched 1024 at a time rather than one per frame."""

    __slots__ = ("_keys", "_pos")

    def __init__(self) -> None:
        self._keys = b""
        self._pos = 0

    def next(self) -> bytes:
        pos = self._pos
        if pos == len(self._keys):
            self._keys = os.urandom(4096)
            pos = 0
        self._pos = pos + 4
        return self._keys[pos : pos + 4]


_mask_keys = _MaskKeys()


def encode_frame(
    payload: bytes, opcode: int, fin: bool = True, rsv1: bool = False, mask: bool = False
) -> bytes:
    """One frame. Unmasked frames (``mask=False``, the server's) can be written to many peers."""
    first = opcode | (0x80 if fin else 0) | (0x40 if rsv1 else 0)
    length = len(payload)
    if mask:
        key = _mask_keys.next()
        if length < 126:
            return bytes((first, 0x80 | length)) + key + apply_mask(payload, key)
        header = _pack_16(first, 0xFE, length) if length < 0x10000 else _pack_64(first, 0xFF, length)
        return header + key + apply_mask(payload, key)
    return pack(payload, opcode, fin, rsv1)


def close_payload(code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
    """The payload of a close frame; ``CLOSE_STATUS_ERROR`` gives the empty payload."""
    if code == CLOSE_STATUS_ERROR:
        return b""
    if code not in SENDABLE_CLOSE_CODES and not 3000 <= code <= 4999:
        raise ValueError(f"close code {code} may not be sent")
    payload = _pack_close_code(code) + reason.encode()
    if len(payload) > MAX_CONTROL_PAYLOAD:
        raise ValueError("close reason longer than 123 bytes")
    return payload


# --------------------------------------------------------------------------------------------
# permessage-deflate (RFC 7692)


@dataclass(frozen=True)
class DeflateParams:
    """permessage-deflate parameters: what a side is willing to use, or what was agreed.

    Window bits are 8..15. ``level`` and ``mem_level`` tune this side's compressor only.
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15
    level: int = 6
    mem_level: int = 5

    def __post_init__(self) -> None:
        for bits in (self.server_max_window_bits, self.client_max_window_bits):
            if not 8 <= bits <= 15:
                raise ValueError(f"max_window_bits must be within 8..15, not {bits}")

    def header(self, offer: bool = False) -> str:
        """The ``Sec-WebSocket-Extensions`` value: an offer (client) or the agreement (server)."""
        parts = ["permessage-deflate"]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_max_window_bits < 15:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if offer and self.client_max_window_bits == 15:
            parts.append("client_max_window_bits")  # supported; the server may choose a size
        elif self.client_max_window_bits < 15:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(parts)


class Deflate:
    """One connection's compression state for the agreed ``params``, seen from one side.

    zlib objects are created on first use and dropped after each message when the context is not
    taken over, so an idle connection holds no zlib memory then.
    """

    __slots__ = (
        "_compressor",
        "_decompressor",
        "can_compress",
        "local_max_window_bits",
        "local_no_context_takeover",
        "params",
        "remote_no_context_takeover",
    )

    def __init__(self, params: DeflateParams, client: bool):
        self.params = params
        if client:
            self.local_max_window_bits = params.client_max_window_bits
            self.local_no_context_takeover = params.client_no_context_takeover
            self.remote_no_context_takeover = params.server_no_context_takeover
        else:
            self.local_max_window_bits = params.server_max_window_bits
            self.local_no_context_takeover = params.server_no_context_takeover
            self.remote_no_context_takeover = params.client_no_context_takeover
        # zlib cannot deflate raw streams with a 256-byte window; then this side sends uncompressed
        # messages (RFC 7692 lets the sender choose per message), and still inflates.
        self.can_compress = self.local_max_window_bits >= 9
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None

    def compress(self, data: bytes, fin: bool) -> bytes:
        """Deflate one frame's payload of an outgoing message (``fin``: its last frame)."""
        compressor = self._compressor
        if compressor is None:
            params = self.params
            compressor = self._compressor = zlib.compressobj(
                params.level, zlib.DEFLATED, -self.local_max_window_bits, params.mem_level
            )
        out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if fin:
            if self.local_no_context_takeover:
                self._compressor = None
            return out[:-4] if out.endswith(_DEFLATE_TAIL) else out
        return out

    def decompress(self, data: bytes, fin: bool, limit: int) -> bytes:
        """Inflate one frame's payload of an incoming message; at most ``limit`` bytes out."""
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(-15)
        if fin:
            data += _DEFLATE_TAIL
        try:
            out = decompressor.decompress(data, limit + 1)
        except zlib.error as exc:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"invalid compressed data: {exc}") from None
        if len(out) > limit or decompressor.unconsumed_tail:
            raise ProtocolError(CLOSE_MESSAGE_TOO_BIG, "message too big after decompression")
        if fin and self.remote_no_context_takeover:
            self._decompressor = None
        return out


def parse_extensions(header: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """``Sec-WebSocket-Extensions`` as ``[(name, [(param, value or None), ...]), ...]``."""
    extensions = []
    for item in header.split(","):
        if not item.strip():
            continue
        name, *raw_params = (part.strip() for part in item.split(";"))
        params: list[tuple[str, str | None]] = []
        for raw in raw_params:
            key, sep, value = raw.partition("=")
            params.append((key.strip().lower(), value.strip().strip('"') if sep else None))
        extensions.append((name.lower(), params))
    return extensions


def _window_bits(value: str | None) -> int:
    if value is None or not value.isdigit() or not 8 <= int(value) <= 15:
        raise ValueError(f"invalid max_window_bits {value!r}")
    return int(value)


def negotiate_deflate(header: str | None, settings: DeflateParams) -> DeflateParams | None:
    """Server side: the agreed parameters for the first acceptable permessage-deflate offer.

    ``settings`` is what the server wants: its no-context-takeover choices are imposed, its window
    sizes are upper bounds. An offer with unknown, repeated or invalid parameters is declined.
    """
    for name, params in parse_extensions(header or ""):
        if name != "permessage-deflate":
            continue
        names = [key for key, _ in params]
        if len(set(names)) != len(names):
            continue
        agreed = {
            "server_no_context_takeover": settings.server_no_context_takeover,
            "client_no_context_takeover": settings.client_no_context_takeover,
            "server_max_window_bits": settings.server_max_window_bits,
            "client_max_window_bits": 15,
        }
        try:
            for key, value in params:
                if key in ("server_no_context_takeover", "client_no_context_takeover"):
                    if value is not None:
                        raise ValueError(f"{key} takes no value")
                    if key == "server_no_context_takeover":
                        agreed[key] = True
                elif key == "server_max_window_bits":
                    agreed[key] = min(_window_bits(value), settings.server_max_window_bits)
                elif key == "client_max_window_bits":
                    bits = 15 if value is None else _window_bits(value)
                    agreed[key] = min(bits, settings.client_max_window_bits)
                else:
                    raise ValueError(f"unknown parameter {key}")
        except ValueError:
            continue
        return replace(settings, **agreed)
    return None


def accept_deflate(header: str, offered: DeflateParams) -> DeflateParams:
    """Client side: check the server's permessage-deflate answer to ``offered``; the agreement."""
    extensions = parse_extensions(header)
    if len(extensions) != 1 or extensions[0][0] != "permessage-deflate":
        raise HandshakeError(f"unexpected Sec-WebSocket-Extensions: {header}")
    agreed = {
        "server_no_context_takeover": False,
        "client_no_context_takeover": offered.client_no_context_takeover,
        "server_max_window_bits": 15,
        "client_max_window_bits": offered.client_max_window_bits,
    }
    seen = set()
    for key, value in extensions[0][1]:
        if key in seen:
            raise HandshakeError(f"repeated permessage-deflate parameter {key}")
        seen.add(key)
        try:
            if key in ("server_no_context_takeover", "client_no_context_takeover"):
                if value is not None:
                    raise ValueError(f"{key} takes no value")
                agreed[key] = True
            elif key == "server_max_window_bits":
                agreed[key] = _window_bits(value)
            elif key == "client_max_window_bits":
                agreed[key] = min(_window_bits(value), offered.client_max_window_bits)
            else:
                raise ValueError(f"unknown parameter {key}")
        except ValueError as exc:
            raise HandshakeError(f"invalid permessage-deflate response: {exc}") from None
    if offered.server_no_context_takeover and not agreed["server_no_context_takeover"]:
        raise HandshakeError("server ignored server_no_context_takeover")
    if agreed["server_max_window_bits"] > offered.server_max_window_bits:
        raise HandshakeError("server_max_window_bits above the offer")
    return replace(offered, **agreed)


# --------------------------------------------------------------------------------------------
# Opening handshake (RFC 6455 section 4)


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def _tokens(value: str | None) -> list[str]:
    return [token.strip().lower() for token in (value or "").split(",")]


def validate_request(method: str, headers: Mapping[str, str]) -> str:
    """Check an upgrade request (``headers`` with lower-case names); return its key."""
    if method != "GET":
        raise HandshakeError(f"WebSocket handshake must use GET, not {method}", 405, [("Allow", "GET")])
    if "websocket" not in _tokens(headers.get("upgrade")):
        raise HandshakeError("missing Upgrade: websocket")
    if "upgrade" not in _tokens(headers.get("connection")):
        raise HandshakeError("missing Connection: Upgrade")
    if headers.get("sec-websocket-version", "").strip() != "13":
        raise HandshakeError("unsupported Sec-WebSocket-Version", 426, [("Sec-WebSocket-Version", "13")])
    key = headers.get("sec-websocket-key", "").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        valid_key = False
    if not valid_key:
        raise HandshakeError("invalid Sec-WebSocket-Key")
    return key


def select_subprotocol(offered: str | None, supported: Sequence[str]) -> str | None:
    """The first of the server's ``supported`` subprotocols that the client offered."""
    client = {token.strip() for token in (offered or "").split(",")}
    return next((protocol for protocol in supported if protocol in client), None)


@dataclass
class ServerHandshake:
    """An accepted upgrade request: the 101 response's headers and what was agreed."""

    headers: list[tuple[str, str]]
    subprotocol: str | None
    deflate: DeflateParams | None

    def response(self) -> bytes:
        """The whole ``101 Switching Protocols`` response."""
        lines = ["HTTP/1.1 101 Switching Protocols", *(f"{name}: {value}" for name, value in self.headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


def server_handshake(
    method: str,
    headers: Mapping[str, str],
    subprotocols: Sequence[str] = (),
    compression: DeflateParams | None = None,
) -> ServerHandshake:
    """Validate an upgrade request and negotiate; raises ``HandshakeError``."""
    key = validate_request(method, headers)
    response = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    subprotocol = select_subprotocol(headers.get("sec-websocket-protocol"), subprotocols)
    if subprotocol:
        response.append(("Sec-WebSocket-Protocol", subprotocol))
    deflate = None
    if compression is not None:
        deflate = negotiate_deflate(headers.get("sec-websocket-extensions"), compression)
        if deflate is not None:
            response.append(("Sec-WebSocket-Extensions", deflate.header()))
    return ServerHandshake(response, subprotocol, deflate)


def new_key() -> str:
    """A fresh ``Sec-WebSocket-Key``."""
    return base64.b64encode(os.urandom(16)).decode()


def client_request(
    host: str,
    resource: str,
    key: str,
    subprotocols: Sequence[str] = (),
    compression: DeflateParams | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The client's upgrade request (``host`` as the ``Host`` header value)."""
    lines = [
        f"GET {resource} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocols:
        lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
    if compression is not None:
        lines.append(f"Sec-WebSocket-Extensions: {compression.header(offer=True)}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def validate_response(
    status: int,
    headers: Mapping[str, str],
    key: str,
    subprotocols: Sequence[str] = (),
    compression: DeflateParams | None = None,
) -> tuple[str | None, DeflateParams | None]:
    """Check the server's answer (``headers`` with lower-case names): (subprotocol, deflate)."""
    if status != 101:
        raise HandshakeError(f"server answered HTTP {status} instead of 101", status)
    if "websocket" not in _tokens(headers.get("upgrade")):
        raise HandshakeError("missing Upgrade: websocket", status)
    if "upgrade" not in _tokens(headers.get("connection")):
        raise HandshakeError("missing Connection: Upgrade", status)
    if headers.get("sec-websocket-accept", "").strip() != accept_key(key):
        raise HandshakeError("wrong Sec-WebSocket-Accept", status)
    subprotocol = headers.get("sec-websocket-protocol", "").strip() or None
    if subprotocol is not None and subprotocol not in subprotocols:
        raise HandshakeError(f"server chose a subprotocol that was not offered: {subprotocol}", status)
    extensions = headers.get("sec-websocket-extensions", "").strip()
    deflate = None
    if extensions:
        if compression is None:
            raise HandshakeError(f"server chose extensions that were not offered: {extensions}", status)
        deflate = accept_deflate(extensions, compression)
    return subprotocol, deflate


# --------------------------------------------------------------------------------------------
# Frames of an established connection


class WebSocketCodec:
    """Parser and encoder for one connection (``client=True`` for the client's side).

    ``max_message_size`` bounds a message (assembled, and after decompression): beyond it the
    connection fails with 1009. With ``fragments=True`` each data frame is returned as it arrives
    (``Frame.finish`` marks the last one; text fragments are decoded up to whole characters)
    instead of whole messages. After a ``CloseFrame`` or ``ProtocolError``, input is ignored.

    ``simple_limit`` is what a server passes to ``parse_frame`` with a received chunk before
    ``feed``: the message limit while a chunk may be decoded in C without the codec's state (whole
    messages, none in progress, no partial frame buffered, still open), -1 otherwise.
    ``plain_output``: a whole uncompressed message may be sent as ``pack(data, opcode)`` (server
    role, no fragmented message being sent), which is what ``encode`` returns then.
    """

    __slots__ = (
        "_buffer",
        "_compressing",
        "_decoder",
        "_message_compressed",
        "_message_opcode",
        "_message_size",
        "_needed",
        "_parts",
        "_simple",
        "client",
        "close_received",
        "close_sent",
        "deflate",
        "fd",
        "fragments",
        "max_message_size",
        "plain_output",
        "simple_limit",
    )

    def __init__(
        self,
        client: bool = False,
        max_message_size: int = DEFAULT_MAX_LENGTH,
        deflate: DeflateParams | None = None,
        fragments: bool = False,
        fd: int = 0,
    ):
        self.client = client
        self.max_message_size = max_message_size
        self.deflate = Deflate(deflate, client) if deflate is not None else None
        self.fragments = fragments
        self.fd = fd
        self.close_received = False
        self.close_sent = False
        self._buffer = bytearray()
        self._needed = 0
        self._message_opcode = 0  # opcode of the fragmented message in progress, 0 when none
        self._message_compressed = False
        self._message_size = 0
        self._parts: list[str] | list[bytes] = []
        self._decoder: codecs.IncrementalDecoder | None = None
        self._compressing: bool | None = None  # outgoing fragmented message: compressed or not
        self.plain_output = not client
        self._simple = False
        self.simple_limit = -1
        self._update_fast_path()

    # ---- parsing -------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Frame | ProtocolError]:
        """Parse ``data``; return the events it completed (a ``ProtocolError`` comes last)."""
        if self._buffer:
            buffer = self._buffer
            buffer += data
            if len(buffer) < self._needed:
                return []
            data = bytes(buffer)
            buffer.clear()
        if self.close_received:
            return []
        end = len(data)
        events: list[Frame | ProtocolError]
        if self._simple:  # the usual frames in C; the others, and every error, below
            events, pos = parse_frames(data, 0, self.fd, self.max_message_size)  # type: ignore[assignment]
            if pos == end:
                self.simple_limit = self.max_message_size
                return events
        else:
            events = []
            pos = 0
        masked_input = not self.client
        whole_messages = not self.fragments
        limit = self.max_message_size
        fd = self.fd
        try:
            while pos + 2 <= end:
                first = data[pos]
                second = data[pos + 1]
                length = second & 0x7F
                start = pos + 2
                if length >= 126:
                    if length == 126:
                        if end < pos + 4:
                            self._needed = 4
                            break
                        length = _unpack_16(data, start)[0]
                        start += 2
                    else:
                        if end < pos + 10:
                            self._needed = 10
                            break
                        length = _unpack_64(data, start)[0]
                        start += 8
                        if length >> 63:
                            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "frame length has the high bit set")
                if second & 0x80:
                    if not masked_input:
                        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "masked frame from the server")
                    start += 4
                elif masked_input:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "unmasked frame from the client")
                opcode = first & 0x0F
                if first & 0x70:
                    self._check_reserved_bits(first, opcode)
                if opcode >= OPCODE_CLOSE:
                    if opcode > OPCODE_PONG:
                        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"reserved opcode {opcode}")
                    if length > MAX_CONTROL_PAYLOAD:
                        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "control frame payload over 125 bytes")
                    if not first & 0x80:
                        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
                elif opcode > OPCODE_BINARY:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"reserved opcode {opcode}")
                elif self._message_size + length > limit:
                    raise ProtocolError(CLOSE_MESSAGE_TOO_BIG, f"message over the {limit}-byte limit")
                stop = start + length
                if stop > end:
                    self._needed = stop - pos
                    break
                payload = data[start:stop]
                if masked_input:
                    payload = apply_mask(payload, data[start - 4 : start])
                pos = stop
                if first == 0x81 and whole_messages and not self._message_opcode:
                    try:
                        events.append(Frame(payload.decode(), OPCODE_TEXT, FLAG_FIN, fd))
                    except UnicodeDecodeError:
                        raise ProtocolError(CLOSE_MESSAGE_ERROR, "invalid UTF-8 in a text message") from None
                elif first == 0x82 and whole_messages and not self._message_opcode:
                    events.append(Frame(payload, OPCODE_BINARY, FLAG_FIN, fd))
                elif opcode < OPCODE_CLOSE:
                    frame = self._data_frame(first, opcode, payload)
                    if frame is not None:
                        events.append(frame)
                elif opcode == OPCODE_CLOSE:
                    events.append(self._close_frame(payload))
                    self.close_received = True
                    self._update_fast_path()
                    self._buffer.clear()
                    return events
                else:
                    events.append(Frame(payload, opcode, FLAG_FIN, fd))
        except ProtocolError as error:
            events.append(error)
            self.close_received = True
            self._update_fast_path()
            self._buffer.clear()
            return events
        if pos < end:
            if pos + 2 > end:
                self._needed = 2
            self._buffer += data[pos:] if pos else data
        self._update_fast_path()
        return events

    def _update_fast_path(self) -> None:
        """Server side, whole messages, none in progress, still open: usual frames are decoded in C."""
        self._simple = not (self.client or self.fragments or self._message_opcode or self.close_received)
        self.simple_limit = self.max_message_size if self._simple and not self._buffer else -1

    def _check_reserved_bits(self, first: int, opcode: int) -> None:
        if first & 0x30:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits RSV2/RSV3 set")
        if self.deflate is None:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "RSV1 set without a negotiated extension")
        if opcode == OPCODE_CONTINUATION or opcode >= OPCODE_CLOSE:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "RSV1 set on a continuation or control frame")

    def _data_frame(self, first: int, opcode: int, payload: bytes) -> Frame | None:
        """A text, binary or continuation frame outside the fast path."""
        fin = bool(first & 0x80)
        if opcode == OPCODE_CONTINUATION:
            if not self._message_opcode:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "continuation frame without a message to continue")
            message_opcode = self._message_opcode
        else:
            if self._message_opcode:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "new message before the previous one finished")
            message_opcode = opcode
            self._message_opcode = opcode
            self._update_fast_path()
            self._message_compressed = bool(first & 0x40)
            self._message_size = 0
            if opcode == OPCODE_TEXT:
                self._decoder = _utf8_decoder()
        compressed = self._message_compressed
        if compressed:
            payload = self.deflate.decompress(payload, fin, self.max_message_size - self._message_size)  # type: ignore[union-attr]
        self._message_size += len(payload)
        if message_opcode == OPCODE_TEXT:
            try:
                piece: str | bytes = self._decoder.decode(payload, fin)  # type: ignore[union-attr]
            except UnicodeDecodeError:
                raise ProtocolError(CLOSE_MESSAGE_ERROR, "invalid UTF-8 in a text message") from None
        else:
            piece = payload
        flags = (FLAG_FIN if fin else 0) | (FLAG_COMPRESS if compressed else 0)
        if fin:
            self._message_opcode = 0
            self._update_fast_path()
            self._message_size = 0
            self._decoder = None
        if self.fragments:
            return Frame(piece, opcode, flags, self.fd)
        parts = self._parts
        if not fin:
            parts.append(piece)  # type: ignore[arg-type]
            return None
        if parts:
            parts.append(piece)  # type: ignore[arg-type]
            piece = "".join(parts) if message_opcode == OPCODE_TEXT else b"".join(parts)  # type: ignore[arg-type]
            self._parts = []
        return Frame(piece, message_opcode, flags, self.fd)

    def _close_frame(self, payload: bytes) -> CloseFrame:
        if not payload:
            return CloseFrame(CLOSE_STATUS_ERROR, "", payload, self.fd)
        if len(payload) == 1:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload")
        code = _unpack_16(payload)[0]
        if code not in SENDABLE_CLOSE_CODES and not 3000 <= code <= 4999:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
        try:
            reason = payload[2:].decode()
        except UnicodeDecodeError:
            raise ProtocolError(CLOSE_MESSAGE_ERROR, "invalid UTF-8 in the close reason") from None
        return CloseFrame(code, reason, payload, self.fd)

    # ---- encoding ------------------------------------------------------------------------

    def encode(self, data: str | bytes, opcode: int = OPCODE_TEXT, flags: int = FLAG_FIN) -> bytes:
        """One outgoing frame. ``FLAG_COMPRESS`` deflates data frames when negotiated.

        A message is sent in fragments by clearing ``FLAG_FIN`` on all frames but the last and
        using ``OPCODE_CONTINUATION`` after the first.
        """
        if flags == FLAG_FIN and 0 < opcode < OPCODE_CLOSE and self.plain_output:
            return pack(data, opcode)
        payload = data.encode() if isinstance(data, str) else data
        fin = bool(flags & FLAG_FIN)
        rsv1 = False
        if opcode < OPCODE_CLOSE:
            if opcode == OPCODE_CONTINUATION:
                if self._compressing is None:
                    raise ValueError("continuation frame without a fragmented message in progress")
                compress = self._compressing
            else:
                if self._compressing is not None:
                    raise ValueError("new message before the fragmented one was finished")
                compress = rsv1 = (
                    bool(flags & FLAG_COMPRESS) and self.deflate is not None and self.deflate.can_compress
                )
            if compress:
                payload = self.deflate.compress(payload, fin)  # type: ignore[union-attr]
            self._compressing = None if fin else compress
            self.plain_output = fin and not self.client
        elif len(payload) > MAX_CONTROL_PAYLOAD:
            raise ValueError("control frame payload over 125 bytes")
        return encode_frame(payload, opcode, fin, rsv1, self.client)

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
        """The close frame to send, or ``b""`` if one was sent already.

        To answer the peer's ``CloseFrame``, pass its ``code`` (``CLOSE_STATUS_ERROR`` answers
        with an empty close frame).
        """
        if self.close_sent:
            return b""
        payload = close_payload(code, reason)
        self.close_sent = True
        return encode_frame(payload, OPCODE_CLOSE, True, False, self.client)
