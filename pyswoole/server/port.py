"""Listening ports: the server's own and those added with ``listen()``, each with its socket,
framing settings and callbacks (events a port does not set fall back to the server's)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyswoole.constants import (
    DGRAM_TYPES,
    SOCK_TCP,
    SOCK_TCP6,
    SOCK_TYPE_MASK,
    SOCK_UDP,
    SOCK_UDP6,
    SOCK_UNIX_DGRAM,
    SOCK_UNIX_STREAM,
    SSL,
    UNIX_TYPES,
)
from pyswoole.server import settings as settings_module
from pyswoole.server import tls

if TYPE_CHECKING:
    from pyswoole.server.server import Server

log = logging.getLogger("pyswoole")

_FAMILIES = {
    SOCK_TCP: (socket.AF_INET, socket.SOCK_STREAM),
    SOCK_TCP6: (socket.AF_INET6, socket.SOCK_STREAM),
    SOCK_UDP: (socket.AF_INET, socket.SOCK_DGRAM),
    SOCK_UDP6: (socket.AF_INET6, socket.SOCK_DGRAM),
    SOCK_UNIX_STREAM: (socket.AF_UNIX, socket.SOCK_STREAM),
    SOCK_UNIX_DGRAM: (socket.AF_UNIX, socket.SOCK_DGRAM),
}

#: Events a port may handle itself.
PORT_EVENTS = ("connect", "receive", "close", "packet", "buffer_full", "buffer_empty")


class Port:
    """One listening socket of a server (Swoole's ``Server\\Port``)."""

    def __init__(self, server: Server, host: str, port: int, sock_type: int):
        kind = sock_type & SOCK_TYPE_MASK
        if kind not in _FAMILIES:
            raise ValueError(f"unknown socket type {sock_type!r}: use one of the SOCK_* constants")
        self.ssl = bool(sock_type & SSL)
        if self.ssl and kind in DGRAM_TYPES:
            raise ValueError(
                "SSL needs a stream socket (SOCK_TCP, SOCK_TCP6 or SOCK_UNIX_STREAM): DTLS is not supported"
            )
        self.server = server
        self.host = host
        self.port = port
        self.type = kind
        self._connection_factory: Any = None
        self.sock: socket.socket | None = None
        self.own_settings: dict[str, Any] | None = None
        self.callbacks: dict[str, Callable[..., Any]] = {}

    # -- configuration -------------------------------------------------------------------------
    def set(self, values: dict[str, Any]) -> None:
        """Per-port framing and protocol settings; without ``set`` a port inherits the server's."""
        checked = settings_module.validate(values, self.server.SETTINGS, port=True)
        self.own_settings = {**(self.own_settings or {}), **checked}

    def on(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        """Register a callback for this port only; usable as a decorator."""
        return self.server._register(self.callbacks, event, callback, allowed=self.server.PORT_EVENTS)

    @property
    def settings(self) -> dict[str, Any]:
        """Effective settings: the server's, overridden by this port's own when it has any."""
        base = self.server.setting
        if self.own_settings is None or self is self.server.ports[0]:
            return base
        port_keys = {k for k, s in self.server.SETTINGS.items() if s.port}
        merged = {k: v for k, v in base.items() if k not in port_keys}
        merged.update({k: self.server.SETTINGS[k].default for k in port_keys})
        merged.update(self.own_settings)
        return merged

    def callback(self, event: str) -> Callable[..., Any] | None:
        return self.callbacks.get(event) or self.server.callbacks.get(event)

    @property
    def tls(self) -> bool:
        """Whether this port's connections speak TLS: the ``SSL`` flag in its socket type, or, on
        servers that enable TLS from the settings alone (HTTP, WebSocket), an ``ssl_cert_file``."""
        if self.ssl:
            return True
        return self.server.TLS_FROM_SETTINGS and self.is_stream and bool(self.settings["ssl_cert_file"])

    @property
    def connection_class(self) -> Any:
        """The factory of this port's stream connections: ``factory(worker, port)`` gives the
        asyncio Protocol, which runs the server's connection class inside TLS on a TLS port."""
        factory = self._connection_factory
        if factory is None:
            factory = self.server.connection_class_for(self)
            if self.tls:
                factory = tls.connection_factory(
                    factory, tls.make_context(self.settings, self.server.TLS_ALPN)
                )
            self._connection_factory = factory
        return factory

    def prepare(self) -> None:
        """At ``start()``: build the connection factory, so that a TLS port without a certificate,
        or with a bad one, fails there and not at its first client."""
        if not self.is_stream:
            return
        try:
            self.connection_class  # noqa: B018 - built and kept for the workers
        except settings_module.SettingsError as exc:
            raise settings_module.SettingsError(f"{self!r}: {exc}") from exc
        own = self is self.server.ports[0] or self.own_settings is not None  # not inherited from the server
        if own and not self.tls and self.settings["ssl_cert_file"]:
            log.warning(
                "%r has ssl_cert_file but no SSL flag: it serves plain text (add | SSL to its socket type)",
                self,
            )

    @property
    def is_stream(self) -> bool:
        return self.type not in DGRAM_TYPES

    @property
    def fileno(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    # -- socket ---------------------------------------------------------------------------------
    def bind(self, backlog: int) -> None:
        """Create, bind and (for streams) listen; the port number of ``port=0`` is resolved."""
        family, kind = _FAMILIES[self.type]
        sock = socket.socket(family, kind)
        try:
            if self.type in UNIX_TYPES:
                _remove_stale_unix_socket(self.host)
                sock.bind(self.host)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((self.host, self.port))
                self.port = sock.getsockname()[1]
            if kind == socket.SOCK_STREAM:
                sock.listen(backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def adopt(self, sock: socket.socket) -> None:
        """Serve an inherited listening socket (a restart) instead of binding a new one."""
        sock.setblocking(False)
        if self.type not in UNIX_TYPES:
            self.port = sock.getsockname()[1]
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def unlink(self) -> None:
        """Remove a Unix socket file this server created."""
        if self.type in UNIX_TYPES:
            with contextlib.suppress(OSError):
                os.unlink(self.host)

    def __repr__(self) -> str:
        return f"<Port {self.host}:{self.port} type={self.type}>"


def _remove_stale_unix_socket(path: str) -> None:
    """A socket file left by a dead server is removed; one in use makes bind fail as it should."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, OSError):
        os.unlink(path)
    else:
        raise OSError(f"{path} is in use by another server")
    finally:
        probe.close()
