"""``co.Client``: the coroutine client, the blocking client's API awaited.

Swoole's rule holds: one socket is read (or written) by one coroutine at a time; a second coroutine
trying it gets a ``RuntimeError`` naming both.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from asyncio import events
from collections.abc import Callable
from typing import Any

from pyswoole.client.base import ClientBase
from pyswoole.constants import SOCK_TCP
from pyswoole.coroutine.io import claim_error, wait_ready, wake_closed


class Client(ClientBase):
    """``await client.connect(host, port, timeout)``, ``await send``, ``await recv``, ``close()``.

    ``timeout`` arguments are seconds; None uses the ``read_timeout``/``write_timeout``/``timeout``
    setting (default: wait forever), a negative value waits forever. Failures return False with
    ``errCode``/``errMsg`` set.
    """

    def __init__(self, sock_type: int = SOCK_TCP) -> None:
        super().__init__(sock_type)

    async def _io(self, op: Callable[..., Any], writing: bool, timeout: float | None, *args: Any) -> Any:
        sock = self.sock
        assert sock is not None
        error = claim_error(sock.fileno(), writing)
        if error is not None:
            raise error
        while True:
            try:
                return op(*args)
            except BlockingIOError:
                wait_write = writing
            except ssl.SSLWantReadError:
                wait_write = False
            except ssl.SSLWantWriteError:
                wait_write = True
            if not await wait_ready(sock.fileno(), wait_write, timeout):
                raise TimeoutError("timed out")

    async def connect(self, host: str, port: int = 0, timeout: float = 0.5) -> bool:
        if self.sock is not None:
            return self._fail(errno.EISCONN, "already connected")
        connect_timeout = self._timeout("connect_timeout", timeout)
        sock = None
        try:
            address = self._address(host, port)
            if self.family != socket.AF_UNIX:
                infos = await events.get_running_loop().getaddrinfo(
                    host, port, family=self.family, type=self.socktype
                )
                address = infos[0][4]
            sock = self._new_socket()
            sock.setblocking(False)
            err = sock.connect_ex(address)
            if err in (errno.EINPROGRESS, errno.EAGAIN):
                if not await wait_ready(sock.fileno(), True, connect_timeout):
                    raise TimeoutError("connect timed out")
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, errno.errorcode.get(err, str(err)))
            if self.ssl:
                server_hostname = self.settings.get("ssl_host_name", host)
                sock = self._ssl_context().wrap_socket(
                    sock, server_hostname=server_hostname, do_handshake_on_connect=False
                )
                self.sock = sock
                await self._io(sock.do_handshake, True, connect_timeout)  # type: ignore[attr-defined]
        except Exception as exc:
            self.sock = None
            if sock is not None:
                sock.close()
            return self._fail(exc)
        self.sock = sock
        self._peer = address
        self._packets.clear()
        if self._framer is not None:
            self.set({})
        return True

    async def send(self, data: bytes | str, timeout: float | None = None) -> int | bool:
        """Send all of ``data``; the number of bytes, or False."""
        sock = self.sock
        if sock is None:
            return self._fail(errno.ENOTCONN, "not connected")
        if isinstance(data, str):
            data = data.encode()
        limit = (
            self._timeout("write_timeout", None) if timeout is None else (None if timeout < 0 else timeout)
        )
        try:
            if not self.stream:
                return await self._io(sock.send, True, limit, data)
            view, sent = memoryview(data), 0
            while sent < len(view):
                sent += await self._io(sock.send, True, limit, view[sent:])
        except (OSError, ssl.SSLError) as exc:
            return self._fail(exc)
        return len(data)

    async def sendfile(
        self, filename: str, offset: int = 0, length: int = 0, timeout: float | None = None
    ) -> bool:
        """Send ``length`` bytes (0: to the end) of a file from ``offset``; ``sendfile(2)`` without TLS."""
        sock = self.sock
        if sock is None:
            return self._fail(errno.ENOTCONN, "not connected")
        limit = (
            self._timeout("write_timeout", None) if timeout is None else (None if timeout < 0 else timeout)
        )
        try:
            with open(filename, "rb") as file:
                end = offset + length if length else os.fstat(file.fileno()).st_size
                while offset < end:
                    size = min(end - offset, 1 << 20)
                    if self.ssl:
                        file.seek(offset)
                        chunk = file.read(size)
                        sent = await self._io(sock.send, True, limit, chunk) if chunk else 0
                    else:
                        sent = await self._io(
                            os.sendfile, True, limit, sock.fileno(), file.fileno(), offset, size
                        )
                    if not sent:  # the file is shorter than asked
                        break
                    offset += sent
        except (OSError, ssl.SSLError) as exc:
            return self._fail(exc)
        return True

    async def recv(self, timeout: float | None = None, size: int = 65535) -> bytes | bool:
        """One whole packet with framing, else up to ``size`` bytes; ``b""`` when the peer closed."""
        if self._packets:
            return self._packets.popleft()
        sock = self.sock
        if sock is None:
            return self._fail(errno.ENOTCONN, "not connected")
        limit = self._timeout("read_timeout", None) if timeout is None else (None if timeout < 0 else timeout)
        try:
            if self._framer is None:
                return await self._io(sock.recv, False, limit, size)
            while True:
                data = await self._io(sock.recv, False, limit, 65536)
                if not data:
                    return b""
                packet = self._take(data)
                if packet is not None:
                    return packet
        except (OSError, ssl.SSLError, ValueError) as exc:
            return self._fail(exc)

    async def sendto(self, host: str, port: int, data: bytes | str) -> bool:
        """Send one datagram to ``host:port`` (UDP clients)."""
        if self.stream:
            return self._fail(errno.EPROTOTYPE, "sendto() is for datagram clients")
        if isinstance(data, str):
            data = data.encode()
        try:
            if self.sock is None:
                self.sock = self._new_socket()
                self.sock.setblocking(False)
            sock = self.sock
            await self._io(sock.sendto, True, None, data, self._address(host, port))
        except OSError as exc:
            return self._fail(exc)
        return True

    async def recvfrom(self, size: int = 65535, timeout: float | None = None) -> tuple[bytes, Any] | bool:
        """One datagram and its sender address."""
        sock = self.sock
        if sock is None:
            return self._fail(errno.ENOTCONN, "not connected")
        limit = self._timeout("read_timeout", None) if timeout is None else (None if timeout < 0 else timeout)
        try:
            return await self._io(sock.recvfrom, False, limit, size)
        except OSError as exc:
            return self._fail(exc)

    def close(self) -> bool:
        """Close the connection; a coroutine waiting on it gets False (EBADF)."""
        sock, self.sock = self.sock, None
        if sock is None:
            return False
        wake_closed(sock.fileno())
        sock.close()
        return True
