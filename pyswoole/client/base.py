"""What the blocking and the coroutine clients share: socket types, settings, framing, state."""

from __future__ import annotations

import errno
import socket
from collections import deque
from collections.abc import Mapping
from typing import Any

from pyswoole.constants import (
    KEEP,
    SOCK_TCP,
    SOCK_TCP6,
    SOCK_TYPE_MASK,
    SOCK_UDP,
    SOCK_UDP6,
    SOCK_UNIX_DGRAM,
    SOCK_UNIX_STREAM,
    SSL,
)
from pyswoole.protocol.framing import Framer, FramingError, make_framer

#: Swoole socket type -> (address family, socket type).
SOCKET_KINDS: dict[int, tuple[int, int]] = {
    SOCK_TCP: (socket.AF_INET, socket.SOCK_STREAM),
    SOCK_TCP6: (socket.AF_INET6, socket.SOCK_STREAM),
    SOCK_UDP: (socket.AF_INET, socket.SOCK_DGRAM),
    SOCK_UDP6: (socket.AF_INET6, socket.SOCK_DGRAM),
    SOCK_UNIX_STREAM: (socket.AF_UNIX, socket.SOCK_STREAM),
    SOCK_UNIX_DGRAM: (socket.AF_UNIX, socket.SOCK_DGRAM),
}

FRAMING_SETTINGS = frozenset(
    {
        "open_eof_check",
        "open_eof_split",
        "package_eof",
        "open_length_check",
        "package_length_type",
        "package_length_offset",
        "package_body_offset",
        "package_length_func",
        "package_max_length",
    }
)
CLIENT_SETTINGS = FRAMING_SETTINGS | {
    "timeout",
    "connect_timeout",
    "read_timeout",
    "write_timeout",
    "bind_address",
    "bind_port",
    "socket_buffer_size",
    "open_tcp_nodelay",
    "ssl_verify_peer",
    "ssl_host_name",
    "ssl_cafile",
    "ssl_cert_file",
    "ssl_key_file",
}


class ClientBase:
    """State and settings common to ``Client`` and ``co.Client``."""

    def __init__(self, sock_type: int = SOCK_TCP) -> None:
        kind = sock_type & SOCK_TYPE_MASK
        if kind not in SOCKET_KINDS:
            raise ValueError(
                f"unknown socket type {sock_type} (use SOCK_TCP, SOCK_UDP, SOCK_UNIX_STREAM, ...)"
            )
        self.type = kind
        self.family, self.socktype = SOCKET_KINDS[kind]
        self.ssl = bool(sock_type & SSL)
        self.keep = bool(sock_type & KEEP)
        self.settings: dict[str, Any] = {}
        self.sock: socket.socket | None = None
        self.errCode = 0
        self.errMsg = ""
        self.reuse = False
        self._framer: Framer | None = None
        self._packets: deque[bytes] = deque()
        self._peer: Any = None

    @property
    def stream(self) -> bool:
        return self.socktype == socket.SOCK_STREAM

    def set(self, settings: Mapping[str, Any]) -> bool:
        """Client settings: the servers' framing settings, timeouts, bind address, TLS options."""
        unknown = sorted(set(settings) - CLIENT_SETTINGS)
        if unknown:
            raise ValueError(f"unknown client settings {unknown}")
        merged = {**self.settings, **settings}
        self._framer = make_framer(merged)  # validates the framing settings first
        self.settings = merged
        return True

    def _fail(self, exc: BaseException | int, message: str = "") -> bool:
        """Record an error in ``errCode``/``errMsg``; always False (Swoole's failure value)."""
        if isinstance(exc, int):
            self.errCode, self.errMsg = exc, message or errno.errorcode.get(exc, str(exc))
        elif isinstance(exc, TimeoutError):
            self.errCode, self.errMsg = errno.ETIMEDOUT, message or "timed out"
        elif isinstance(exc, FramingError):
            self.errCode, self.errMsg = errno.EPROTO, str(exc)
        elif isinstance(exc, OSError) and exc.errno:
            self.errCode, self.errMsg = exc.errno, exc.strerror or str(exc)
        else:
            self.errCode, self.errMsg = errno.EIO, message or str(exc)
        return False

    def _address(self, host: str, port: int) -> Any:
        return host if self.family == socket.AF_UNIX else (host, port)

    def _new_socket(self) -> socket.socket:
        sock = socket.socket(self.family, self.socktype)
        bind_address = self.settings.get("bind_address")
        if bind_address is not None:
            sock.bind(self._address(bind_address, self.settings.get("bind_port", 0)))
        size = self.settings.get("socket_buffer_size")
        if size:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        if self.stream and self.family != socket.AF_UNIX and self.settings.get("open_tcp_nodelay", True):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _ssl_context(self) -> Any:
        import ssl

        context = ssl.create_default_context(cafile=self.settings.get("ssl_cafile"))
        if not self.settings.get("ssl_verify_peer", False):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.settings.get("ssl_cert_file"):
            context.load_cert_chain(self.settings["ssl_cert_file"], self.settings.get("ssl_key_file"))
        return context

    def _timeout(self, name: str, default: float | None) -> float | None:
        value = self.settings.get(name, self.settings.get("timeout", default))
        return None if value is None or value < 0 else value

    def _take(self, data: bytes) -> bytes | None:
        """Feed received bytes to the framer; the next whole packet, or None if none is complete yet."""
        assert self._framer is not None
        self._packets.extend(self._framer.feed(data))
        return self._packets.popleft() if self._packets else None

    def is_connected(self) -> bool:
        return self.sock is not None

    def getpeername(self) -> dict[str, Any] | bool:
        """``{"host", "port"}`` of the peer (False when not connected)."""
        if self.sock is None:
            return False
        try:
            peer = self.sock.getpeername() if self.stream else self._peer
        except OSError as exc:
            return self._fail(exc)
        if isinstance(peer, tuple):
            return {"host": peer[0], "port": peer[1]}
        return {"host": peer, "port": 0}

    def getsockname(self) -> dict[str, Any] | bool:
        if self.sock is None:
            return False
        name = self.sock.getsockname()
        if isinstance(name, tuple):
            return {"host": name[0], "port": name[1]}
        return {"host": name, "port": 0}

    def shutdown(self, how: int = socket.SHUT_RDWR) -> bool:
        """Shut down one or both directions of the connection (the socket stays open)."""
        if self.sock is None:
            return self._fail(errno.ENOTCONN, "not connected")
        try:
            self.sock.shutdown(how)
        except OSError as exc:
            return self._fail(exc)
        return True

    def fileno(self) -> int:
        return -1 if self.sock is None else self.sock.fileno()

    @property
    def has_buffered_packet(self) -> bool:
        """A whole packet is already buffered: ``recv`` returns it without touching the socket."""
        return bool(self._packets)
