"""The master process of PROCESS mode: it accepts, dispatches, and keeps every connection alive.

The master owns the listening sockets. For each accepted connection it picks a worker
(``dispatch_mode`` / ``dispatch_func``) and passes the socket to it over IPC (SCM_RIGHTS); from
then on the worker reads and writes the socket itself, so the data path is as short as in BASE
mode. The master keeps a duplicate of every socket: when a worker is reloaded it hands its
connections back (``RELEASE``, with the bytes it had read but not yet processed) and the master
passes them to the replacement; when a worker dies, the master's duplicates keep the connections
open until the replacement adopts them. A connection ends when its worker reports ``CLOSED`` and
the master drops the last duplicate.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import struct
from typing import TYPE_CHECKING, Any

from pyswoole.constants import (
    DISPATCH_FDMOD,
    DISPATCH_IDLE_WORKER,
    DISPATCH_IPMOD,
    DISPATCH_ROUND_ROBIN,
    DISPATCH_UIDMOD,
)
from pyswoole.process.ipc import Mailbox
from pyswoole.process.supervisor import die_with_parent

if TYPE_CHECKING:
    from pyswoole.server.server import Server

log = logging.getLogger("pyswoole")

# master <-> worker messages (kinds 20..29)
MSG_CONNECT = 20  # master -> worker: !QiB fd, port index, adopted; leftover input; the socket (SCM_RIGHTS)
MSG_READY = 21  # worker -> master: !i worker id (it takes connections now)
MSG_CLOSED = 22  # worker -> master: !Q fd (drop the duplicate: the connection ends)
MSG_RELEASE = 23  # worker -> master: !Qi fd, target worker id (-1: same id); leftover input
MSG_WORKER_EXIT = 24  # manager -> master: !ii worker id, pid
CONNECT = struct.Struct("!QiB")
RELEASE = struct.Struct("!Qi")
WORKER_PID = struct.Struct("!ii")
FD = struct.Struct("!Q")
WORKER_ID = struct.Struct("!i")

DISPATCH_CONNECT_EVENT = 4  # the ``type`` given to dispatch_func: a new connection


class _Connection:
    __slots__ = ("port_index", "sock", "worker_id", "worker_pid")

    def __init__(self, sock: socket.socket, port_index: int, worker_id: int):
        self.sock = sock
        self.port_index = port_index
        self.worker_id = worker_id
        self.worker_pid = 0


class Master:
    """Accepts connections and hands them to workers; supervises the manager process."""

    def __init__(self, server: Server):
        self.server = server
        self.settings = server.setting
        self.registry = server._registry
        self.worker_num: int = self.settings["worker_num"]
        self.connections: dict[int, _Connection] = {}
        self.worker_pids: dict[int, int] = {}  # worker id -> pid of the worker taking connections
        self.retiring: set[int] = set()  # pids handing their connections back
        self.pending: dict[int, collections.deque[tuple[int, bytes, bool]]] = collections.defaultdict(
            collections.deque
        )
        self.counts: collections.Counter[int] = collections.Counter()
        self.round_robin = 0
        self.manager_pid = 0
        self.mailbox: Mailbox | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Future | None = None
        self._stopping = False

    # -- life cycle ------------------------------------------------------------------------------
    def run(self, start_manager: Any) -> None:
        """Fork the manager (``start_manager()`` runs in it), then serve until it exits."""
        master_pid = os.getpid()
        # Bind the mailbox before any worker exists: their READY must find it.
        self.mailbox = Mailbox(self.server._namespace, self._on_message)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                self.mailbox.sock.close()  # the master's: not for the manager and its workers
                self.mailbox = None
                die_with_parent(master_pid)
                code = start_manager() or 0
            except BaseException:
                log.exception("manager crashed")
            finally:
                os._exit(code)
        self.manager_pid = self.server.manager_pid = pid
        from pyswoole.server.worker import new_event_loop

        self.loop = loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        assert self.mailbox is not None
        self.mailbox.attach(loop)
        for signo in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signo, self.shutdown)
        for signo in (signal.SIGUSR1, signal.SIGUSR2):
            loop.add_signal_handler(signo, os.kill, self.manager_pid, signo)
        loop.add_signal_handler(signal.SIGRTMIN, self._reopen_logs)
        control = self.server._control
        loop.add_reader(control.fileno(), control.on_readable)
        manager_exit = os.pidfd_open(self.manager_pid)  # readable once the manager has exited
        loop.add_reader(manager_exit, self._reap)
        for index, port in enumerate(self.server.ports):
            if port.is_stream:
                loop.add_reader(port.sock.fileno(), self._accept, index)
        self._reap()
        await self._done
        loop.remove_reader(control.fileno())
        for port in self.server.ports:
            if port.is_stream:
                loop.remove_reader(port.sock.fileno())  # (again: harmless when already removed)
        for conn in self.connections.values():
            conn.sock.close()
        self.connections.clear()
        self.mailbox.close()
        loop.remove_reader(manager_exit)
        os.close(manager_exit)

    def _reopen_logs(self) -> None:
        self.server._reopen_logs()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.manager_pid, signal.SIGRTMIN)

    def shutdown(self) -> None:
        """Stop the manager (it drains and stops the workers); a second request forces it."""
        if self._stopping:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.manager_pid, signal.SIGKILL)
            return
        self._stopping = True
        self.registry.shutting_down.set(1)
        for port in self.server.ports:  # stop accepting now: a restarted server may take the port
            if port.is_stream and port.sock is not None:
                self.loop.remove_reader(port.sock.fileno())  # type: ignore[union-attr]
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.manager_pid, signal.SIGTERM)

    def _reap(self) -> None:
        try:
            pid, status = os.waitpid(self.manager_pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.manager_pid, 0
        if pid == 0:
            return
        if not self._stopping:
            log.error(
                "the manager (pid %d) exited unexpectedly (status %d): stopping", self.manager_pid, status
            )
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    # -- accepting and dispatching ---------------------------------------------------------------
    def _accept(self, port_index: int) -> None:
        listener = self.server.ports[port_index].sock
        for _ in range(64):
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("accept failed: %s", exc)
                return
            if self._stopping or self.registry.connection_num >= self.registry.max_conn:
                if not self._stopping:
                    log.warning("max_conn %d reached: connection refused", self.registry.max_conn)
                sock.close()
                continue
            sock.setblocking(False)
            fd = self.registry.next_fd()
            worker_id = self._choose_worker(fd, address)
            conn = self.connections[fd] = _Connection(sock, port_index, worker_id)
            self.counts[worker_id] += 1
            self._hand_over(fd, conn, b"", adopted=False)

    def _choose_worker(self, fd: int, address: Any) -> int:
        dispatch_func = self.settings["dispatch_func"]
        if dispatch_func is not None:
            try:
                return int(dispatch_func(self.server, fd, DISPATCH_CONNECT_EVENT, b"")) % self.worker_num
            except Exception:
                log.exception("dispatch_func failed: falling back to fd %% worker_num")
                return fd % self.worker_num
        mode = self.settings["dispatch_mode"]
        if mode == DISPATCH_ROUND_ROBIN:
            self.round_robin = (self.round_robin + 1) % self.worker_num
            return self.round_robin
        if mode == DISPATCH_IDLE_WORKER:
            return min(range(self.worker_num), key=lambda w: (self.counts[w], w))
        if mode == DISPATCH_IPMOD and isinstance(address, tuple):
            with contextlib.suppress(ValueError):
                return int(ipaddress.ip_address(address[0])) % self.worker_num
        if mode in (DISPATCH_FDMOD, DISPATCH_UIDMOD, DISPATCH_IPMOD):
            return fd % self.worker_num
        return fd % self.worker_num

    def _hand_over(self, fd: int, conn: _Connection, leftover: bytes, adopted: bool) -> None:
        conn.worker_pid = 0  # nobody owns it until a worker takes it (not queued twice on an exit)
        pid = self.worker_pids.get(conn.worker_id)
        if pid is None or pid in self.retiring:
            self.pending[conn.worker_id].append((fd, leftover, adopted))
            return
        assert self.mailbox is not None
        head = CONNECT.pack(fd, conn.port_index, int(adopted))
        if self.mailbox.send(pid, MSG_CONNECT, head, leftover, fds=(conn.sock.fileno(),)):
            conn.worker_pid = pid
        else:
            self.pending[conn.worker_id].append((fd, leftover, adopted))

    def _flush_pending(self, worker_id: int) -> None:
        queue = self.pending.pop(worker_id, None)
        while queue:
            fd, leftover, adopted = queue.popleft()
            conn = self.connections.get(fd)
            if conn is not None:
                self._hand_over(fd, conn, leftover, adopted)

    # -- messages from workers and the manager -----------------------------------------------------
    def _on_message(self, kind: int, sender: int, payload: bytes, fds: list[int]) -> None:
        for extra in fds:
            os.close(extra)
        if kind == MSG_READY:
            worker_id = WORKER_ID.unpack(payload)[0]
            self.worker_pids[worker_id] = sender
            self._flush_pending(worker_id)
        elif kind == MSG_CLOSED:
            fd = FD.unpack(payload)[0]
            conn = self.connections.pop(fd, None)
            if conn is not None:
                self.counts[conn.worker_id] -= 1
                conn.sock.close()
        elif kind == MSG_RELEASE:
            fd, target = RELEASE.unpack_from(payload)
            leftover = payload[RELEASE.size :]
            conn = self.connections.get(fd)
            if conn is None:
                return
            if self._stopping:
                self.connections.pop(fd)
                conn.sock.close()
                self.registry.remove(fd)
                return
            self.retiring.add(sender)
            if target >= 0 and target != conn.worker_id:
                self.counts[conn.worker_id] -= 1
                self.counts[target] += 1
                conn.worker_id = target
                self.retiring.discard(sender)  # a migration (uid dispatch), not a retirement
            self._hand_over(fd, conn, leftover, adopted=True)
        elif kind == MSG_WORKER_EXIT:
            worker_id, pid = WORKER_PID.unpack(payload)
            self.retiring.discard(pid)
            self.mailbox.forget(pid)  # type: ignore[union-attr]
            if self.worker_pids.get(worker_id) == pid:
                del self.worker_pids[worker_id]
            for fd, conn in self.connections.items():
                if conn.worker_pid == pid:  # its connections outlive it: the replacement adopts them
                    conn.worker_pid = 0
                    self.pending[conn.worker_id].append((fd, b"", True))
            if worker_id in self.worker_pids:
                self._flush_pending(worker_id)
