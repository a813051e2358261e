"""The connection registry: what every process of a server knows about every connection.

It lives in shared memory created before the fork: an ``AtomicLong`` hands out connection ids
(``fd``) counting from 1 in accept order across all workers, never reused; a ``Table`` keyed by
fd holds one row per live connection (owner worker and pid, addresses, times, uid); a second
``Table`` keyed by worker slot holds each worker's pid, state and published counters. The owner
writes a connection's row on accept and deletes it on close; any process reads it to route
``send``/``close`` to the owner and to answer ``exists``, ``get_client_info`` and ``connections``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from pyswoole.shm import Atomic, AtomicLong, Table

_CONNECTION_COLUMNS = (
    ("worker_id", Table.TYPE_INT, 0),
    ("pid", Table.TYPE_INT, 0),
    ("server_fd", Table.TYPE_INT, 0),
    ("server_port", Table.TYPE_INT, 0),
    ("remote_port", Table.TYPE_INT, 0),
    ("remote_ip", Table.TYPE_STRING, 108),
    ("connect_time", Table.TYPE_INT, 0),
    ("last_time", Table.TYPE_INT, 0),
    ("uid", Table.TYPE_INT, 0),
    ("websocket_status", Table.TYPE_INT, 0),
    ("recv_bytes", Table.TYPE_INT, 0),
    ("sent_bytes", Table.TYPE_INT, 0),
)

_WORKER_COLUMNS = (
    ("pid", Table.TYPE_INT, 0),
    ("status", Table.TYPE_INT, 0),
    ("start_time", Table.TYPE_INT, 0),
    ("request_count", Table.TYPE_INT, 0),
    ("connection_num", Table.TYPE_INT, 0),
)


def _table(size: int, columns: tuple[tuple[str, int, int], ...]) -> Table:
    table = Table(size)
    for name, kind, length in columns:
        if length:
            table.column(name, kind, length)
        else:
            table.column(name, kind)
    table.create()
    return table


class Registry:
    """Shared state of one server; create it in the launching process, before any fork."""

    def __init__(self, max_conn: int, worker_slots: int, task_workers: int = 0):
        self.max_conn = max_conn
        self.last_fd = AtomicLong(0)
        self.accept_count = AtomicLong(0)
        self.close_count = AtomicLong(0)
        self.tasks_queued = AtomicLong(0)
        self.shutting_down = AtomicLong(0)  # 1 once the server is stopping (not a reload)
        self.task_states = [Atomic(1) for _ in range(task_workers)]  # 0 idle, 1 taken (see tasks.py)
        self.task_cursor = Atomic(0)
        self.start_time = int(time.time())
        self.connections = _table(max_conn, _CONNECTION_COLUMNS)
        self.workers = _table(max(worker_slots, 1), _WORKER_COLUMNS)

    # -- connections ---------------------------------------------------------------------------
    def next_fd(self) -> int:
        return self.last_fd.add(1)

    @property
    def connection_num(self) -> int:
        return self.accept_count.get() - self.close_count.get()

    def add(self, fd: int, row: dict[str, Any]) -> None:
        self.connections.set(str(fd), row)
        self.accept_count.add(1)

    def remove(self, fd: int) -> None:
        self.connections.delete(str(fd))
        self.close_count.add(1)

    def get(self, fd: int) -> dict[str, Any] | None:
        return self.connections.get(str(fd))

    def touch(self, fd: int, last_time: int, recv_bytes: int, sent_bytes: int) -> None:
        """The owner's once-a-second update of a live connection's activity."""
        self.connections.set(
            str(fd), {"last_time": last_time, "recv_bytes": recv_bytes, "sent_bytes": sent_bytes}
        )

    def set_websocket_status(self, fd: int, status: int) -> None:
        """Called by the owner of a live connection (0 none, 1 handshake, 2 active, 3 closing)."""
        self.connections.set(str(fd), {"websocket_status": status})

    def bind(self, fd: int, uid: int) -> bool:
        key = str(fd)
        if not self.connections.exists(key):
            return False
        self.connections.set(key, {"uid": uid})
        if not self.connections.exists(key):  # closed meanwhile: do not leave a dead row behind
            self.connections.delete(key)
        return True

    def fds(self) -> Iterator[int]:
        """Every live connection of every worker, in accept order."""
        return iter(sorted(int(key) for key, _ in self.connections))

    # -- workers ---------------------------------------------------------------------------------
    def set_worker(self, slot: int, **values: Any) -> None:
        self.workers.set(str(slot), values)

    def worker(self, slot: int) -> dict[str, Any] | None:
        return self.workers.get(str(slot))
