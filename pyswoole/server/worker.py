"""A worker process: its event loop, its connections, and the IPC that makes them server-wide.

The worker serves the listening sockets it inherited, keeps its own connections in a dict by fd,
and publishes them in the shared registry. Operations on a connection another worker owns
(``send``, ``close``, ``pause``, ``resume``) and ``send_message`` travel as IPC messages to the
owner's mailbox (formats in ``docs/architecture.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import random
import signal
import socket
import struct
import time
from typing import TYPE_CHECKING, Any

from pyswoole.constants import PROCESS, WORKER_BUSY, WORKER_EXIT, WORKER_IDLE
from pyswoole.coroutine.runner import spawn
from pyswoole.process.ipc import Mailbox
from pyswoole.server import master as master_messages
from pyswoole.server import tls
from pyswoole.server.connection import DatagramEndpoint, StreamConnection
from pyswoole.server.settings import tune_gc
from pyswoole.server.tasks import MSG_FINISH, MSG_TASK_WORKER_GONE, TaskClient
from pyswoole.timer import Timer

if TYPE_CHECKING:
    from pyswoole.server.server import Server

log = logging.getLogger("pyswoole")

# IPC message kinds and their payload layouts (after the mailbox header).
MSG_SEND = 1  # !Q fd, then the raw bytes
MSG_CLOSE = 2  # !QB fd, reset
MSG_PAUSE = 3  # !Q fd
MSG_RESUME = 4  # !Q fd
MSG_PIPE = 5  # !i source worker id, then a pickle
FD = struct.Struct("!Q")
FD_FLAG = struct.Struct("!QB")
WORKER_ID = struct.Struct("!i")


def resident_memory(pid: int | str = "self") -> int:
    """Resident set size of a process in bytes (from /proc)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed, else asyncio's default."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Worker:
    """The state of the worker process ``worker_id``; exists only inside that process."""

    # the fields every request reads or counts, in slots: the HTTP path in C finds them at fixed
    # offsets (no dict lookup), Python at the cost of an instance attribute
    __slots__ = ("__dict__", "clock", "max_request", "request_count")

    def __init__(self, server: Server, worker_id: int):
        self.server = server
        self.worker_id = worker_id
        self.settings = server.setting
        self.registry = server._registry
        self.connections: dict[int, StreamConnection] = {}
        self.datagram_endpoints: list[tuple[Any, DatagramEndpoint]] = []
        self.request_count = 0
        self.max_request = self.settings["max_request"]
        if self.max_request:  # jitter, so that workers started together do not recycle together
            grace = self.settings["max_request_grace"]
            grace = self.max_request // 2 if grace is None else grace
            self.max_request += random.randint(0, grace) if grace > 0 else 0
        self.max_memory = self.settings["max_memory"]
        self.process_mode = server.mode == PROCESS
        self.clock = int(time.time())
        self.loop: asyncio.AbstractEventLoop | None = None
        self.mailbox: Mailbox | None = None
        self.handoff: tuple[int, bool] | None = None  # (fd, adopted) of the connection being built
        self.tasks: TaskClient | None = None
        self._listeners: list[asyncio.AbstractServer] = []
        self._stopping = False
        self._stopped: asyncio.Future | None = None

    # -- life cycle ------------------------------------------------------------------------------
    def run(self) -> int:
        Timer._reset_after_fork()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the manager decides; a terminal ^C reaches all
        signal.signal(signal.SIGTERM, lambda signo, frame: self.stop())  # until the loop takes over
        self.loop = loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
        return 0

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopped = loop.create_future()
        if self._stopping:  # asked to stop while starting
            self._stopped.set_result(None)
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGRTMIN, self.server._reopen_logs)
        self.mailbox = Mailbox(self.server._namespace, self._on_message)
        self.mailbox.attach(loop)
        self.tasks = TaskClient(self.server, self.mailbox, self.worker_id)
        self.registry.set_worker(
            self.worker_id, pid=os.getpid(), status=WORKER_IDLE, start_time=int(time.time()), request_count=0
        )
        self._every(1.0, self._tick_clock)
        interval = self.settings["heartbeat_check_interval"]
        if interval:
            self._every(interval, self._check_heartbeat)
        callback = self.server.callbacks.get("worker_start")
        if callback is not None:
            spawn(callback, self.server, self.worker_id, name="worker_start")
        for port in self.server.ports:
            if not (self.process_mode and port.is_stream):  # the master accepts in PROCESS mode
                await self._serve(port)
        tune_gc(self.settings)
        if self.process_mode:
            self.mailbox.send(
                self.server.master_pid,
                master_messages.MSG_READY,
                master_messages.WORKER_ID.pack(self.worker_id),
            )
        await self._stopped
        await self._shutdown()

    async def _serve(self, port: Any) -> None:
        loop = asyncio.get_running_loop()
        sock = port.sock.dup()
        if port.is_stream:
            listener = await loop.create_server(
                lambda: port.connection_class(self, port), sock=sock, backlog=self.settings["backlog"]
            )
            self._listeners.append(listener)
        else:
            await loop.create_datagram_endpoint(lambda: DatagramEndpoint(self, port), sock=sock)

    def stop(self) -> None:
        """Begin the graceful stop (SIGTERM, reload, max_request)."""
        if self._stopping:
            return
        self._stopping = True
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    def recycle(self, reason: str = "") -> None:
        """``max_request`` or ``max_memory`` reached: stop gracefully; the manager starts a fresh
        worker (in PROCESS mode it adopts this one's connections)."""
        if not self._stopping:
            log.info(
                "worker %d restarting: %s",
                self.worker_id,
                reason or f"max_request {self.max_request} reached",
            )
            self.stop()

    async def _shutdown(self) -> None:
        self.registry.set_worker(self.worker_id, status=WORKER_EXIT)
        for listener in self._listeners:
            listener.close()
        callback = self.server.callbacks.get("worker_exit")
        if callback is not None:
            spawn(callback, self.server, self.worker_id, name="worker_exit")
        deadline = time.monotonic() + self.settings["max_wait_time"]
        hand_back = self.process_mode and not self.registry.shutting_down.get()
        if hand_back:  # reload or recycling: the connections live on in the next worker
            for conn in self.connections.values():
                conn.transport.pause_reading()
        await self._drain(deadline)
        for conn in list(self.connections.values()):
            if hand_back and not tls.carries_tls(conn):
                conn.release()
            else:
                conn.close()
        while self.connections and time.monotonic() < deadline + 1:
            await asyncio.sleep(0.01)
        callback = self.server.callbacks.get("worker_stop")
        if callback is not None:
            spawn(callback, self.server, self.worker_id, name="worker_stop")
        await self._drain(deadline)
        for transport, _ in self.datagram_endpoints:
            transport.close()
        self.publish_stats()
        if self.mailbox is not None:
            self.mailbox.close()

    async def _drain(self, deadline: float) -> None:
        """Let running callbacks finish, until ``deadline``."""
        current = asyncio.current_task()
        while time.monotonic() < deadline:
            pending = [t for t in asyncio.all_tasks() if t is not current]
            if not pending:
                return
            await asyncio.wait(pending, timeout=deadline - time.monotonic())
        pending = [t for t in asyncio.all_tasks() if t is not current]
        if pending:
            log.warning(
                "worker %d: %d coroutines still running after max_wait_time", self.worker_id, len(pending)
            )
            for task in pending:
                task.cancel()

    def _every(self, seconds: float, fn: Any) -> None:
        assert self.loop is not None

        def run() -> None:
            if not self._stopping:
                fn()
                self.loop.call_later(seconds, run)  # type: ignore[union-attr]

        self.loop.call_later(seconds, run)

    def _tick_clock(self) -> None:
        self.clock = int(time.time())
        self.publish_stats()
        if self.max_memory:
            rss = resident_memory()
            if rss > self.max_memory:
                self.recycle(f"resident memory {rss} bytes over max_memory {self.max_memory}")

    def publish_stats(self) -> None:
        self.registry.set_worker(
            self.worker_id,
            request_count=self.request_count,
            connection_num=len(self.connections),
            status=WORKER_EXIT if self._stopping else (WORKER_BUSY if self.connections else WORKER_IDLE),
        )

    def _check_heartbeat(self) -> None:
        idle_time = self.settings["heartbeat_idle_time"] or 2 * self.settings["heartbeat_check_interval"]
        now = time.time()
        for conn in list(self.connections.values()):
            if now - conn.last_time >= idle_time:
                log.info("closing idle connection %d (no data for %.0f s)", conn.fd, now - conn.last_time)
                conn.close()

    # -- connections -------------------------------------------------------------------------------
    def open_connection(self, conn: StreamConnection) -> bool:
        """Give a new connection its fd and publish it; False refuses it (over ``max_conn``).

        In PROCESS mode the master has already numbered the connection; one adopted from
        another worker keeps its registry row, which only changes owner.
        """
        registry = self.registry
        if conn.adopted:
            self.connections[conn.fd] = conn
            registry.connections.set(str(conn.fd), {"worker_id": self.worker_id, "pid": os.getpid()})
            row = registry.get(conn.fd) or {}
            conn.remote = (row.get("remote_ip", ""), row.get("remote_port", 0))
            return True
        if not conn.fd and registry.connection_num >= registry.max_conn:
            log.warning("max_conn %d reached: connection refused", registry.max_conn)
            return False
        fd = conn.fd or registry.next_fd()
        peer = conn.transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            remote_ip, remote_port = peer[0], peer[1]
        else:
            remote_ip, remote_port = peer or "", 0
        conn.fd = fd
        conn.remote = (remote_ip, remote_port)
        now = int(time.time())
        conn.last_time = now
        try:
            registry.add(
                fd,
                {
                    "worker_id": self.worker_id,
                    "pid": os.getpid(),
                    "server_fd": conn.port.fileno,
                    "server_port": conn.port.port,
                    "remote_ip": remote_ip,
                    "remote_port": remote_port,
                    "connect_time": now,
                    "last_time": now,
                    "uid": 0,
                },
            )
        except Exception as exc:
            log.warning("connection %d refused: %s", fd, exc)
            conn.fd = 0
            return False
        self.connections[fd] = conn
        return True

    def close_connection(self, conn: StreamConnection) -> None:
        if self.connections.pop(conn.fd, None) is not None:
            self.registry.remove(conn.fd)
            if self.process_mode:  # the master holds the last duplicate: the connection ends there
                self.mailbox.send(self.server.master_pid, master_messages.MSG_CLOSED, FD.pack(conn.fd))  # type: ignore[union-attr]

    def release_connection(self, conn: StreamConnection) -> None:
        """The connection's transport let go of it: tell the master who takes it next."""
        if self.connections.pop(conn.fd, None) is None:
            return
        head = master_messages.RELEASE.pack(conn.fd, conn.release_target)
        self.mailbox.send(self.server.master_pid, master_messages.MSG_RELEASE, head, conn.unprocessed_input())  # type: ignore[union-attr]

    def adopt(self, payload: bytes, fds: list[int]) -> None:
        """A connection passed by the master (new, or taken over from another worker)."""
        fd, port_index, adopted = master_messages.CONNECT.unpack_from(payload)
        leftover = payload[master_messages.CONNECT.size :]
        sock = socket.socket(fileno=fds[0])
        port = self.server.ports[port_index]

        def make() -> StreamConnection:
            # The connection takes its fd from here while it is built: a factory may wrap it
            # (TLS returns an SSLProtocol around it), so it cannot be set on the result.
            self.handoff = (fd, bool(adopted))
            try:
                return port.connection_class(self, port)
            finally:
                self.handoff = None

        async def connect() -> None:
            try:
                _, conn = await self.loop.connect_accepted_socket(make, sock)  # type: ignore[union-attr]
            except OSError as exc:
                log.warning("connection %d could not be taken over: %s", fd, exc)
                self.mailbox.send(self.server.master_pid, master_messages.MSG_CLOSED, FD.pack(fd))  # type: ignore[union-attr]
                return
            if leftover and conn.fd:
                conn.data_received(leftover)

        self.loop.create_task(connect())  # type: ignore[union-attr]

    # -- routing ---------------------------------------------------------------------------------
    def owner_pid(self, fd: int) -> int | None:
        row = self.registry.get(fd)
        return None if row is None else row["pid"]

    def route(self, fd: int, kind: int, *payload: bytes) -> bool:
        """Send an operation on connection ``fd`` to the worker that owns it."""
        pid = self.owner_pid(fd)
        if pid is None or self.mailbox is None:
            return False
        return self.mailbox.send(pid, kind, *payload)

    def send_message(self, message: Any, dst_worker_id: int) -> bool:
        row = self.registry.worker(dst_worker_id)
        if row is None or not row["pid"] or self.mailbox is None:
            return False
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        return self.mailbox.send(row["pid"], MSG_PIPE, WORKER_ID.pack(self.worker_id), data)

    def _on_message(self, kind: int, sender: int, payload: bytes, fds: list[int]) -> None:
        if kind == MSG_FINISH:
            self.tasks.on_finish(payload, sender)  # type: ignore[union-attr]
        elif kind == MSG_TASK_WORKER_GONE:
            self.tasks.task_worker_gone(payload)  # type: ignore[union-attr]
        elif kind == master_messages.MSG_CONNECT:
            self.adopt(payload, fds)
        elif kind == MSG_SEND:
            fd = FD.unpack_from(payload)[0]
            conn = self.connections.get(fd)
            if conn is not None:
                conn.send(payload[FD.size :])
        elif kind == MSG_CLOSE:
            fd, reset = FD_FLAG.unpack(payload)
            conn = self.connections.get(fd)
            if conn is not None:
                conn.close(bool(reset))
        elif kind in (MSG_PAUSE, MSG_RESUME):
            conn = self.connections.get(FD.unpack(payload)[0])
            if conn is not None:
                (conn.transport.pause_reading if kind == MSG_PAUSE else conn.transport.resume_reading)()
        elif kind == MSG_PIPE:
            src = WORKER_ID.unpack_from(payload)[0]
            message = pickle.loads(payload[WORKER_ID.size :])
            callback = self.server.callbacks.get("pipe_message")
            if callback is None:
                log.warning("pipe message from worker %d dropped: no pipe_message callback", src)
            else:
                spawn(callback, self.server, src, message, name="pipe_message")
        else:
            log.warning("unknown IPC message kind %d from pid %d", kind, sender)
