"""Per-connection transports glue: one asyncio Protocol per TCP/Unix stream, one per datagram socket.

The stream protocol is the data path of every request: ``data_received`` feeds the port's framer
(if any) and starts the ``receive`` callback for each whole packet; nothing else happens there but
a once-per-second registry touch for ``last_time``. Protocol servers (HTTP, WebSocket, Redis)
subclass ``StreamConnection`` and replace ``data_received``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import TYPE_CHECKING, Any

from pyswoole.coroutine.runner import spawn
from pyswoole.protocol.framing import FramingError, make_framer

if TYPE_CHECKING:
    from pyswoole.server.port import Port
    from pyswoole.server.worker import Worker

log = logging.getLogger("pyswoole")

CLOSED_BY_SERVER = -1


class StreamConnection(asyncio.Protocol):
    """One accepted stream connection, owned by the worker that accepted it."""

    __slots__ = (
        "adopted",
        "bytes_in",
        "bytes_out",
        "closed_by_server",
        "closing",
        "fd",
        "framer",
        "last_time",
        "paused_writing",
        "port",
        "reactor_id",
        "receive",
        "release_target",
        "released",
        "remote",
        "server",
        "transport",
        "worker",
    )

    def __init__(self, worker: Worker, port: Port):
        self.worker = worker
        self.port = port
        self.server = worker.server
        self.fd = 0
        self.adopted = False  # PROCESS mode: taken over from another worker (no connect event)
        if worker.handoff is not None:  # PROCESS mode: numbered by the master
            self.fd, self.adopted = worker.handoff
        self.reactor_id = worker.worker_id
        self.framer = make_framer(port.settings)
        self.receive = port.callback("receive")
        self.transport: Any = None
        self.remote: tuple[str, int] = ("", 0)
        self.last_time = worker.clock
        self.paused_writing = False
        self.closed_by_server = False
        self.released = False  # PROCESS mode: being handed back to the master
        self.release_target = -1
        self.bytes_in = 0
        self.bytes_out = 0
        self.closing = False  # no more writes: closed, closing or handed over

    # -- asyncio Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        limit = self.worker.settings["buffer_output_size"]
        transport.set_write_buffer_limits(high=limit, low=0)
        if not self.worker.open_connection(self):
            transport.abort()
            return
        if self.adopted:
            return
        callback = self.port.callback("connect")
        if callback is not None:
            spawn(callback, self.server, self.fd, self.reactor_id, name="connect")

    def note_input(self, data: bytes) -> None:
        """The per-read bookkeeping of every protocol: bytes received, and once a second the
        connection's registry row (``last_time`` and byte counts)."""
        self.bytes_in += len(data)
        worker = self.worker
        if self.last_time != worker.clock:
            self.last_time = worker.clock
            worker.registry.touch(self.fd, self.last_time, self.bytes_in, self.bytes_out)

    def count_requests(self, count: int) -> None:
        """Add to the worker's request count; at ``max_request`` the worker recycles itself."""
        worker = self.worker
        worker.request_count += count
        if worker.max_request and worker.request_count >= worker.max_request:
            worker.recycle()

    def data_received(self, data: bytes) -> None:
        # note_input() and count_requests(), inlined: this is the hot path of every TCP server
        # (each method call here costs about 2% of an echo round trip)
        worker = self.worker
        self.bytes_in += len(data)
        if self.last_time != worker.clock:
            self.last_time = worker.clock
            worker.registry.touch(self.fd, self.last_time, self.bytes_in, self.bytes_out)
        receive = self.receive
        if receive is None:
            return
        framer = self.framer
        if framer is None:
            packets: Any = (data,)
        else:
            try:
                packets = framer.feed(data)
            except FramingError as exc:
                log.warning("closing connection %d from %s:%d: %s", self.fd, *self.remote, exc)
                self.closed_by_server = True
                self.transport.abort()
                return
        server, fd, reactor_id = self.server, self.fd, self.reactor_id
        for packet in packets:
            spawn(receive, server, fd, reactor_id, packet, name="receive")
        worker.request_count += len(packets)
        if worker.max_request and worker.request_count >= worker.max_request:
            worker.recycle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if not self.fd:
            return
        if self.released:
            self.worker.release_connection(self)
            return
        self.worker.close_connection(self)
        callback = self.port.callback("close")
        if callback is not None:
            reactor_id = CLOSED_BY_SERVER if self.closed_by_server else self.reactor_id
            spawn(callback, self.server, self.fd, reactor_id, name="close")

    def pause_writing(self) -> None:
        self.paused_writing = True
        callback = self.port.callback("buffer_full")
        if callback is not None:
            spawn(callback, self.server, self.fd, name="buffer_full")

    def resume_writing(self) -> None:
        self.paused_writing = False
        callback = self.port.callback("buffer_empty")
        if callback is not None:
            spawn(callback, self.server, self.fd, name="buffer_empty")

    # -- verbs used by Server ----------------------------------------------------------------------
    def send(self, data: bytes) -> bool:
        if self.paused_writing or self.closing:
            return False
        self.bytes_out += len(data)
        self.transport.write(data)
        return True

    def close(self, reset: bool = False) -> None:
        self.closed_by_server = True
        self.closing = True
        if reset:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:  # RST once the last duplicate (the master's) is closed
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
        else:
            self.transport.close()

    def release(self, target_worker: int = -1) -> None:
        """Hand this connection back to the master (PROCESS mode): stop reading, flush, let go."""
        self.released = True
        self.closing = True
        self.release_target = target_worker
        self.transport.pause_reading()
        self.transport.close()

    def unprocessed_input(self) -> bytes:
        """Bytes read but not yet delivered (an incomplete packet): they go with the connection."""
        return self.framer.take_buffer() if self.framer is not None else b""


class DatagramEndpoint(asyncio.DatagramProtocol):
    """A UDP or Unix datagram socket: each datagram starts the ``packet`` callback."""

    def __init__(self, worker: Worker, port: Port):
        self.worker = worker
        self.port = port
        self.transport: Any = None
        self.packet = port.callback("packet")

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        # registered here, not after create_datagram_endpoint() returns: datagrams already
        # queued are delivered first, and their callbacks may call sendto()
        self.worker.datagram_endpoints.append((transport, self))

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.packet is None:
            return
        self.worker.request_count += 1
        if isinstance(addr, tuple):
            address, port = addr[0], addr[1]
        else:
            address, port = addr or "", 0
        client_info = {
            "server_socket": self.port.fileno,
            "server_port": self.port.port,
            "address": address,
            "port": port,
        }
        spawn(self.packet, self.worker.server, data, client_info, name="packet")

    def error_received(self, exc: Exception) -> None:
        log.warning("datagram socket on port %s: %s", self.port.port, exc)
