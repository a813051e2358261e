"""Messages between the processes of one server: a Unix datagram mailbox per process.

Every process binds one ``AF_UNIX``/``SOCK_DGRAM`` socket in the abstract namespace, named after the
server (``namespace``) and its own pid, so any process can reach any other knowing only its pid; a
respawned worker has a new pid and a new mailbox, and a message for a dead process fails at once
(``ECONNREFUSED``) instead of reaching a stranger.

Datagram format: a 6-byte header ``!BBi`` (kind, flags, sender pid) and the payload. Payloads over
``CHUNK`` bytes go as several datagrams with the ``MORE`` flag on all but the last; one sender's
datagrams arrive in order, so the receiver joins them per sender. Senders keep one connected
socket per peer, so a full peer queue blocks (``EAGAIN``) and the rest waits in an outbox that is
flushed when the socket turns writable: backpressure, never a busy loop and never a silent drop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import select
import socket
import struct
import time
from collections.abc import Callable

log = logging.getLogger("pyswoole")

HEADER = struct.Struct("!BBi")
MORE = 1
CHUNK = 60 * 1024
BUFFER_SIZE = 8 * 1024 * 1024

Handler = Callable[[int, int, bytes, list[int]], None]
"""``handler(kind, sender_pid, payload, fds)``; ``fds`` holds descriptors passed with SCM_RIGHTS."""

_FDS_SPACE = socket.CMSG_SPACE(16 * 4)


def mailbox_address(namespace: str, pid: int) -> bytes:
    return f"\0pyswoole.{namespace}.{pid}".encode()


def _set_buffers(sock: socket.socket, size: int) -> None:
    for force, plain in ((33, socket.SO_SNDBUF), (32, socket.SO_RCVBUF)):  # SO_SNDBUFFORCE, SO_RCVBUFFORCE
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
        except OSError:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, plain, size)


class _Peer:
    __slots__ = ("outbox", "sock", "writing")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.outbox: collections.deque[list[bytes | memoryview]] = collections.deque()
        self.writing = False


class _WithFds(list):
    """A datagram (list of buffers) that carries descriptors."""

    fds: list[int]

    def __init__(self, parts: list, fds: list[int]):
        super().__init__(parts)
        self.fds = fds

    def close_fds(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []


class Mailbox:
    """This process's end of the IPC: receive with a handler, send to any pid of the same server."""

    def __init__(self, namespace: str, handler: Handler | None = None, *, buffer_size: int = BUFFER_SIZE):
        self.namespace = namespace
        self.pid = os.getpid()
        self.handler = handler
        self.buffer_size = buffer_size
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(mailbox_address(namespace, self.pid))
        self.sock.setblocking(False)
        _set_buffers(self.sock, buffer_size)
        self._peers: dict[int, _Peer] = {}
        self._partial: dict[int, list[bytes]] = {}
        self._partial_fds: dict[int, list[int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._one_message = False
        self._poller: select.poll | None = None

    # -- receiving -----------------------------------------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop, *, one_message_per_wakeup: bool = False) -> None:
        """Deliver incoming messages to the handler from ``loop``.

        With ``one_message_per_wakeup`` the loop hands over one whole message each time it finds
        the socket readable, instead of reading until it is empty: a process that handles one
        message at a time (a task worker) then never pays for the read that finds nothing.
        """
        self._loop = loop
        self._one_message = one_message_per_wakeup
        loop.add_reader(self.sock.fileno(), self._on_readable)

    def _recv(self) -> tuple[bytes, list[int]]:
        datagram, ancillary, _, _ = self.sock.recvmsg(CHUNK + HEADER.size, _FDS_SPACE)
        fds: list[int] = []
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(struct.unpack(f"{len(data) // 4}i", data[: len(data) - len(data) % 4]))
        return datagram, fds

    def _on_readable(self) -> None:
        for _ in range(256):
            try:
                datagram, fds = self._recv()
            except (BlockingIOError, InterruptedError):
                return
            if self._accept(datagram, fds) and self._one_message:
                return

    def receive(
        self, timeout: float | None = None, spin: float = 0.0
    ) -> tuple[int, int, bytes, list[int]] | None:
        """Blocking receive of one whole message, for code that cannot wait on the event loop;
        None after ``timeout`` seconds. (The socket stays non-blocking: receive, else poll.)

        With ``spin`` (seconds), a missing message is first awaited without sleeping, yielding the
        CPU between checks: where waking a process that sleeps on another CPU is slow (tens of µs
        in a virtual machine), a reply that arrives within ``spin`` is taken at once.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                datagram, fds = self._recv()
            except (BlockingIOError, InterruptedError):
                wait = -1 if deadline is None else (deadline - time.monotonic()) * 1000
                if deadline is not None and wait <= 0:
                    return None
                if self._poller is None:
                    self._poller = select.poll()
                    self._poller.register(self.sock.fileno(), select.POLLIN)
                if spin:
                    self._spin(min(spin, wait / 1000) if wait >= 0 else spin)
                    spin = 0.0
                    continue
                self._poller.poll(wait)
                continue
            message = self._join(datagram, fds)
            if message is not None:
                return message

    def _spin(self, seconds: float) -> None:
        """Wait up to ``seconds`` for input without sleeping (other processes may run meanwhile)."""
        assert self._poller is not None
        poll = self._poller.poll
        end = time.perf_counter() + seconds
        while not poll(0) and time.perf_counter() < end:
            os.sched_yield()

    def pending(self) -> list[tuple[int, int, bytes, list[int]]]:
        """Every whole message already queued, without waiting."""
        messages = []
        while True:
            try:
                datagram, fds = self._recv()
            except (BlockingIOError, InterruptedError):
                return messages
            message = self._join(datagram, fds)
            if message is not None:
                messages.append(message)

    def _join(self, datagram: bytes, fds: list[int]) -> tuple[int, int, bytes, list[int]] | None:
        kind, flags, sender = HEADER.unpack_from(datagram)
        payload = datagram[HEADER.size :]
        if not (flags or fds or self._partial or self._partial_fds):  # a whole message: the usual case
            return kind, sender, payload, fds
        if fds:
            self._partial_fds.setdefault(sender, []).extend(fds)
        if flags & MORE:
            self._partial.setdefault(sender, []).append(payload)
            return None
        parts = self._partial.pop(sender, None)
        if parts is not None:
            parts.append(payload)
            payload = b"".join(parts)
        return kind, sender, payload, self._partial_fds.pop(sender, [])

    def _accept(self, datagram: bytes, fds: list[int]) -> bool:
        """Pass a datagram on; True when it completed a message."""
        message = self._join(datagram, fds)
        if message is None:
            return False
        if self.handler is not None:
            try:
                self.handler(*message)
            except Exception:
                log.exception(
                    "IPC message of kind %d from pid %d could not be handled", message[0], message[1]
                )
        return True

    # -- sending -------------------------------------------------------------------------------
    def send(self, pid: int, kind: int, *payload: bytes | memoryview, fds: tuple[int, ...] = ()) -> bool:
        """Queue one message for process ``pid``; False if that process has no mailbox.

        ``fds`` are passed along (SCM_RIGHTS) with the first datagram; they are duplicated at
        once, so the caller may close its own copies when ``send`` returns.
        """
        peer = self._peers.get(pid) or self._connect(pid)
        if peer is None:
            return False
        size = sum(map(len, payload))
        if size <= CHUNK:
            datagram = [HEADER.pack(kind, 0, self.pid), *payload]
            if not fds and not peer.outbox:  # the usual case: one datagram, sent at once
                try:
                    peer.sock.sendmsg(datagram)
                    return True
                except (BlockingIOError, InterruptedError):
                    pass  # the peer's queue is full: wait in the outbox
                except OSError as exc:
                    return self._send_failed(pid, exc)
            datagrams = [datagram]
        else:
            data = b"".join(payload)
            last = (size - 1) // CHUNK
            datagrams = [
                [HEADER.pack(kind, MORE if i < last else 0, self.pid), data[i * CHUNK : (i + 1) * CHUNK]]
                for i in range(last + 1)
            ]
        if fds:
            datagrams[0] = _WithFds(datagrams[0], [os.dup(fd) for fd in fds])
        peer.outbox.extend(datagrams)
        return self._flush(pid, peer)

    def _connect(self, pid: int) -> _Peer | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.connect(mailbox_address(self.namespace, pid))
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        _set_buffers(sock, self.buffer_size)
        peer = self._peers[pid] = _Peer(sock)
        return peer

    def _send_failed(self, pid: int, exc: OSError) -> bool:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTCONN):
            log.warning("IPC send to pid %d failed: %s", pid, exc)
        self.forget(pid)
        return False

    def _flush(self, pid: int, peer: _Peer) -> bool:
        outbox = peer.outbox
        sendmsg = peer.sock.sendmsg
        while outbox:
            try:
                head = outbox[0]
                if type(head) is _WithFds:
                    sendmsg(
                        head,
                        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(head.fds)}i", *head.fds))],
                    )
                    head.close_fds()
                else:
                    sendmsg(head)
            except (BlockingIOError, InterruptedError):
                if self._loop is None:  # no loop to wait with: wait here until the peer drains
                    select.select([], [peer.sock], [], 1.0)
                    continue
                if not peer.writing:
                    peer.writing = True
                    self._loop.add_writer(peer.sock.fileno(), self._on_writable, pid)
                return True
            except OSError as exc:
                return self._send_failed(pid, exc)
            outbox.popleft()
        return True

    def _on_writable(self, pid: int) -> None:
        peer = self._peers.get(pid)
        if peer is None:
            return
        peer.writing = False
        assert self._loop is not None
        self._loop.remove_writer(peer.sock.fileno())
        self._flush(pid, peer)

    def forget(self, pid: int) -> None:
        """Drop the connection to ``pid`` (it exited) and whatever was waiting for it."""
        peer = self._peers.pop(pid, None)
        self._partial.pop(pid, None)
        for fd in self._partial_fds.pop(pid, []):
            os.close(fd)
        if peer is None:
            return
        for datagram in peer.outbox:
            if type(datagram) is _WithFds:
                datagram.close_fds()
        if peer.writing and self._loop is not None:
            self._loop.remove_writer(peer.sock.fileno())
        peer.sock.close()

    def close(self, flush_timeout: float = 1.0) -> None:
        """Close the mailbox. Messages still queued for live peers (a receiver holds only
        ``net.unix.max_dgram_qlen`` datagrams, 10 by default) are sent first, waiting up to
        ``flush_timeout`` seconds: a process's last words, such as the connections a stopping
        worker hands back, must not be dropped with it."""
        deadline = time.monotonic() + flush_timeout
        for pid, peer in list(self._peers.items()):
            if not peer.outbox:
                continue
            if peer.writing and self._loop is not None:
                self._loop.remove_writer(peer.sock.fileno())
            peer.writing = True  # no writer registered: this loop waits for the peer itself
            while peer.outbox and pid in self._peers and time.monotonic() < deadline:
                select.select([], [peer.sock], [], max(0.0, deadline - time.monotonic()))
                self._flush(pid, peer)
            peer.writing = False
        for pid in list(self._peers):
            self.forget(pid)
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
