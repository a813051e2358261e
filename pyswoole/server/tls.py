"""TLS on stream ports (Swoole's ``SSL`` socket flag and ``ssl_*`` settings), for every server.

A TLS port's connections are the port's usual connection objects run inside asyncio's
``SSLProtocol``: they receive decrypted bytes, and their ``send``/``close`` go through TLS, so
framing, heartbeats and the protocol servers work unchanged. The context is built once per port
when the server starts, so a missing or bad certificate fails ``start()``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import ssl
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pyswoole.constants import SSL_TLSv1, SSL_TLSv1_1, SSL_TLSv1_2, SSL_TLSv1_3
from pyswoole.server import master as master_messages
from pyswoole.server.settings import SettingsError

if TYPE_CHECKING:
    from pyswoole.server.connection import StreamConnection
    from pyswoole.server.port import Port
    from pyswoole.server.worker import Worker

log = logging.getLogger("pyswoole")

#: ``ssl_protocols`` bits and the TLS versions they stand for, oldest first.
VERSIONS = (
    (SSL_TLSv1, ssl.TLSVersion.TLSv1),
    (SSL_TLSv1_1, ssl.TLSVersion.TLSv1_1),
    (SSL_TLSv1_2, ssl.TLSVersion.TLSv1_2),
    (SSL_TLSv1_3, ssl.TLSVersion.TLSv1_3),
)


def make_context(settings: Mapping[str, Any], alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    """The server-side context of one port, from its ``ssl_*`` settings; ``SettingsError`` names
    the setting at fault."""
    cert_file, key_file = settings["ssl_cert_file"], settings["ssl_key_file"]
    if not cert_file:
        raise SettingsError(
            "a TLS port needs ssl_cert_file (and ssl_key_file unless the key is in the same file)"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(
            f"cannot load ssl_cert_file {cert_file!r} / ssl_key_file {key_file!r}: {exc}"
        ) from exc
    if settings["ssl_ciphers"]:
        try:
            context.set_ciphers(settings["ssl_ciphers"])
        except ssl.SSLError as exc:
            raise SettingsError(f"setting 'ssl_ciphers' {settings['ssl_ciphers']!r}: {exc}") from exc
    if settings["ssl_protocols"]:
        versions = [version for bit, version in VERSIONS if settings["ssl_protocols"] & bit]
        context.minimum_version, context.maximum_version = versions[0], versions[-1]
    client_ca_file = settings["ssl_client_cert_file"]
    if settings["ssl_verify_peer"] and not client_ca_file:
        raise SettingsError(
            "ssl_verify_peer needs ssl_client_cert_file: the CA certificates that sign client certificates"
        )
    if client_ca_file:
        try:
            context.load_verify_locations(client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(f"cannot load ssl_client_cert_file {client_ca_file!r}: {exc}") from exc
        # without ssl_verify_peer a client may present a certificate (checked if it does) or not
        context.verify_mode = ssl.CERT_REQUIRED if settings["ssl_verify_peer"] else ssl.CERT_OPTIONAL
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


class TlsProtocol(asyncio.sslproto.SSLProtocol):
    """One TLS connection: asyncio's SSL protocol around the port's own connection object. A client
    that fails the handshake (plain TCP, a refused certificate, a timeout) is logged and closed."""

    def __init__(self, worker: Worker, connection: StreamConnection, context: ssl.SSLContext):
        super().__init__(asyncio.get_running_loop(), connection, context, None, server_side=True)
        self.worker = worker
        self.connection = connection
        self.peer: Any = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.peer = transport.get_extra_info("peername")
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        connection = self.connection
        if connection.transport is None:  # the handshake never completed: no connection to close
            if isinstance(exc, ConnectionError):  # the client left (a port probe, a health check)
                log.debug("%s closed the connection during the TLS handshake", _address(self.peer))
            elif exc is not None:
                log.warning("TLS handshake with %s failed: %s", _address(self.peer), exc)
            worker = self.worker
            if connection.fd and worker.process_mode:  # numbered by the master, which holds a duplicate
                message = master_messages.FD.pack(connection.fd)
                worker.mailbox.send(worker.server.master_pid, master_messages.MSG_CLOSED, message)  # type: ignore[union-attr]
        super().connection_lost(exc)


def connection_factory(make_connection: Callable[..., StreamConnection], context: ssl.SSLContext) -> Any:
    """A factory of ``TlsProtocol`` around ``make_connection(worker, port)``. Connection classes
    that take a ``tls`` keyword (HTTP's) are told that they run under TLS."""
    try:
        takes_tls = "tls" in inspect.signature(make_connection).parameters
    except (TypeError, ValueError):
        takes_tls = False
    if takes_tls:
        make_connection = functools.partial(make_connection, tls=True)

    def make(worker: Worker, port: Port) -> TlsProtocol:
        return TlsProtocol(worker, make_connection(worker, port), context)

    return make


def carries_tls(connection: StreamConnection) -> bool:
    """Whether a connection runs inside TLS: its state lives in this process, so it cannot change
    hands (reload, ``dispatch_mode`` 5)."""
    return connection.transport.get_extra_info("sslcontext") is not None


def client_certificate(transport: Any) -> str | None:
    """The certificate the client presented on a TLS connection, in PEM; None without one."""
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return ssl.DER_cert_to_PEM_cert(der) if der else None


def _address(peer: Any) -> str:
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else (peer or "a Unix socket client")
