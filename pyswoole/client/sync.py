"""The blocking ``Client`` (Swoole's synchronous client), ``KEEP`` connections and ``client_select``.

Inside a plain coroutine with runtime hooks on, its socket calls suspend only that coroutine, like
any other blocking code.
"""

from __future__ import annotations

import errno
import os
import select
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pyswoole.client.base import ClientBase
from pyswoole.constants import SOCK_TCP
from pyswoole.protocol.framing import Framer


@dataclass
class _Kept:
    """A KEEP connection parked in the process registry between uses."""

    sock: socket.socket
    framer: Framer | None
    packets: deque[bytes] = field(default_factory=deque)
    pid: int = field(default_factory=os.getpid)


#: key -> the process's kept connection (Swoole's ``SWOOLE_KEEP`` registry).
_kept: dict[str, _Kept] = {}


def _alive(sock: socket.socket) -> bool:
    """The peer has not closed the connection (leftover data counts as alive)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    if not poller.poll(0):
        return True
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""  # readable: data, or the peer's close
    except OSError:
        return False


class Client(ClientBase):
    """A blocking TCP/UDP/Unix client: ``Client(SOCK_TCP)``, ``connect``, ``send``, ``recv``, ``close``.

    ``keep=True`` (or ``SOCK_TCP | KEEP``): ``close()`` parks the connection and the next
    ``connect`` with the same key (``key`` or ``host:port``) in this process reuses it
    (``reuse`` is then True); a connection the peer closed is replaced. Methods return False on
    failure with ``errCode``/``errMsg`` set, as Swoole's do.
    """

    def __init__(self, sock_type: int = SOCK_TCP, keep: bool = False, key: str | None = None) -> None:
        super().__init__(sock_type)
        self.keep = self.keep or keep
        self.key = key
        self._kept_key: str | None = None

    def connect(self, host: str, port: int = 0, timeout: float = 0.5) -> bool:
        """Connect (a UDP client only fixes its peer); ``timeout`` also bounds later sends/receives."""
        if self.sock is not None:
            return self._fail(errno.EISCONN, "already connected")
        if self.keep and self._reuse(self.key or f"{host}:{port}"):
            return True
        connect_timeout = self._timeout("connect_timeout", timeout)
        try:
            sock = self._new_socket()
            sock.settimeout(connect_timeout)
            sock.connect(self._address(host, port))
            if self.ssl:
                sock = self._ssl_context().wrap_socket(
                    sock, server_hostname=self.settings.get("ssl_host_name", host)
                )
        except OSError as exc:
            if "sock" in locals():
                sock.close()
            return self._fail(exc)
        sock.settimeout(self._timeout("read_timeout", timeout))
        self.sock = sock
        self._peer = self._address(host, port)
        self.reuse = False
        self._packets.clear()
        if self._framer is not None:
            self.set({})  # a fresh framer for a fresh connection
        if self.keep:
            self._kept_key = self.key or f"{host}:{port}"
        return True

    def _reuse(self, key: str) -> bool:
        kept = _kept.pop(key, None)
        if kept is None:
            return False
        if kept.pid != os.getpid() or not _alive(kept.sock):
            if kept.pid == os.getpid():
                kept.sock.close()
            return False
        self.sock, self._framer, self._packets = kept.sock, kept.framer, kept.packets
        self._peer = self.sock.getpeername()
        self._kept_key = key
        self.reuse = True
        return True

    def send(self, data: bytes | str, flags: int = 0) -> int | bool:
        """Send all of ``data``; the number of bytes, or False."""
        if self.sock is None:
            return self._fail(errno.ENOTCONN, "not connected")
        if isinstance(data, str):
            data = data.encode()
        try:
            if self.stream:
                self.sock.sendall(data, flags)
            else:
                self.sock.send(data, flags)
        except OSError as exc:
            return self._fail(exc)
        return len(data)

    def sendto(self, host: str, port: int, data: bytes | str) -> bool:
        """Send one datagram to ``host:port`` (UDP clients; no connect needed)."""
        if self.stream:
            return self._fail(errno.EPROTOTYPE, "sendto() is for datagram clients")
        if isinstance(data, str):
            data = data.encode()
        try:
            if self.sock is None:
                self.sock = self._new_socket()
                self.sock.settimeout(self._timeout("read_timeout", 0.5))
            self.sock.sendto(data, self._address(host, port))
        except OSError as exc:
            return self._fail(exc)
        self._peer = self._address(host, port)
        return True

    def sendfile(self, filename: str, offset: int = 0, length: int = 0) -> bool:
        if self.sock is None:
            return self._fail(errno.ENOTCONN, "not connected")
        try:
            with open(filename, "rb") as file:
                self.sock.sendfile(file, offset, length or None)
        except OSError as exc:
            return self._fail(exc)
        return True

    def recv(self, size: int = 65535, flags: int = 0) -> bytes | bool:
        """One whole packet when framing is set, else up to ``size`` bytes (exactly ``size`` with
        ``socket.MSG_WAITALL``); ``b""`` when the peer closed; False on error or timeout."""
        if self._packets:
            return self._packets.popleft()
        if self.sock is None:
            return self._fail(errno.ENOTCONN, "not connected")
        try:
            if self._framer is None:
                if flags & socket.MSG_WAITALL and self.stream:
                    return self._recv_exactly(size, flags & ~socket.MSG_WAITALL)
                data, self._peer = (
                    (self.sock.recv(size, flags), self._peer)
                    if self.stream
                    else self.sock.recvfrom(size, flags)
                )
                return data
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return b""
                packet = self._take(data)
                if packet is not None:
                    return packet
        except Exception as exc:
            return self._fail(exc)

    def _recv_exactly(self, size: int, flags: int) -> bytes:
        assert self.sock is not None
        chunks, got = [], 0
        while got < size:
            chunk = self.sock.recv(size - got, flags)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def close(self, force: bool = False) -> bool:
        """Close; a KEEP client parks its connection for reuse unless ``force``."""
        sock, self.sock = self.sock, None
        if sock is None:
            return False
        if self.keep and not force and self._kept_key is not None:
            _kept[self._kept_key] = _Kept(sock, self._framer, self._packets)
            self._packets = deque()
            return True
        sock.close()
        return True

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def client_select(read: list, write: list, error: list, timeout: float | None = 0.5) -> int:
    """Wait until some clients are ready; rewrite the three lists to hold only the ready ones.

    Uses ``poll`` (no 1024-descriptor limit). A client with a whole packet buffered is readable at
    once. ``timeout`` in seconds (None or negative: forever). Returns how many clients are ready.
    """
    poller = select.poll()
    masks: dict[int, int] = {}
    buffered = [c for c in read if c.has_buffered_packet]
    for clients, mask in ((read, select.POLLIN), (write, select.POLLOUT), (error, select.POLLPRI)):
        for client in clients:
            fd = client.fileno()
            if fd < 0:
                raise ValueError(f"{client!r} is not connected")
            masks[fd] = masks.get(fd, 0) | mask
    for fd, mask in masks.items():
        poller.register(fd, mask)
    wait = 0 if buffered else (-1 if timeout is None or timeout < 0 else int(timeout * 1000))
    events = dict(poller.poll(wait))
    failed = select.POLLERR | select.POLLHUP | select.POLLNVAL

    def ready(clients: list, mask: int) -> list:
        return [c for c in clients if events.get(c.fileno(), 0) & mask]

    read[:] = list(dict.fromkeys(buffered + ready(read, select.POLLIN | select.POLLHUP)))
    write[:] = ready(write, select.POLLOUT)
    error[:] = ready(error, select.POLLPRI | failed)
    return len(read) + len(write) + len(error)
