"""Running a server as a service: daemonizing, the pid file, privileges, and the control socket
that the ``pyswoole`` command line uses to ask a running server for its status."""

from __future__ import annotations

import array
import contextlib
import grp
import json
import logging
import os
import pwd
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyswoole.server.server import Server

log = logging.getLogger("pyswoole")

STATES = {0: "starting", 1: "busy", 2: "idle", 3: "exiting"}


def daemonize(pid_file: str | None, log_file: str | None, wait: float = 10.0) -> None:
    """Detach from the terminal (double fork, new session, cwd ``/``, stdio to the log file).

    The launching process waits until the daemon has written ``pid_file`` (when there is one),
    then exits 0, so ``pyswoole start -d`` returns once the server is up.
    """
    previous = read_pid_file(pid_file) if pid_file else None
    if os.fork():
        deadline = time.monotonic() + wait

        def written() -> bool:
            pid = read_pid_file(pid_file)  # type: ignore[arg-type]
            return pid is not None and pid != previous and pid_alive(pid)

        while pid_file and time.monotonic() < deadline and not written():
            time.sleep(0.05)
        os._exit(0 if not pid_file or written() else 1)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.setpgid(0, 0)  # a process group named after the master: `pyswoole check` finds strays by it
    os.chdir("/")
    os.umask(0o022)
    sys.stdout.flush()
    sys.stderr.flush()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if log_file else null
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in {null, out}:
        os.close(fd)


def read_pid_file(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """True if process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def write_pid_file(path: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.replace(tmp, path)


def remove_pid_file(path: str) -> None:
    """Remove the pid file only if it is still ours (a restarted server may own it by now)."""
    if read_pid_file(path) == os.getpid():
        with contextlib.suppress(OSError):
            os.unlink(path)


def drop_privileges(user: str | None, group: str | None) -> None:
    """Run a worker as ``user``/``group`` (only possible when started as root)."""
    if os.getuid() != 0 or not (user or group):
        return
    if group:
        os.setgid(grp.getgrnam(group).gr_gid)
    if user:
        entry = pwd.getpwnam(user)
        if not group:
            os.setgid(entry.pw_gid)
        os.initgroups(user, os.getgid())
        os.setuid(entry.pw_uid)


def control_address(master_pid: int) -> bytes:
    return f"\0pyswoole.control.{master_pid}".encode()


def rss_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class ControlServer:
    """Answers one JSON command per connection on an abstract Unix socket named after the
    master's pid: ``{"command": "stats"}`` or ``{"command": "connections"}``."""

    def __init__(self, server: Server):
        self.server = server
        self.handed_over = False  # the listening sockets went to a restarted server
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(control_address(os.getpid()))
        self.sock.listen(16)
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def on_readable(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        with conn:
            conn.settimeout(1.0)
            try:
                request = json.loads(_read_line(conn))
                command = request.get("command", "")
                if command == "listeners":
                    self.send_listeners(conn)
                    return
                answer = self.answer(command)
            except Exception as exc:
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(answer).encode() + b"\n")

    def send_listeners(self, conn: socket.socket) -> None:
        """Give our listening sockets to a server replacing us (``pyswoole restart``): it accepts
        from the very same sockets, so no connection waiting in a backlog is lost."""
        ports = self.server.ports
        fds = [p.sock.fileno() for p in ports if p.sock is not None]
        description = json.dumps([[p.host, p.port, p.type] for p in ports if p.sock is not None]).encode()
        conn.sendmsg([description + b"\n"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        self.handed_over = True

    def answer(self, command: str) -> Any:
        if command == "stats":
            return self.stats()
        if command == "connections":
            return self.connections()
        return {"error": f"unknown command {command!r}"}

    def stats(self) -> dict[str, Any]:
        server = self.server
        registry = server._registry
        assert registry is not None
        worker_num = server.setting["worker_num"]
        workers = []
        for slot in range(worker_num + server.setting["task_worker_num"]):
            row = registry.worker(slot) or {}
            pid = row.get("pid", 0)
            workers.append(
                {
                    "id": slot,
                    "type": "worker" if slot < worker_num else "task",
                    "pid": pid,
                    "state": STATES.get(row.get("status", 0), "?") if pid and pid_alive(pid) else "down",
                    "connections": row.get("connection_num", 0),
                    "requests": row.get("request_count", 0),
                    "rss": rss_of(pid) if pid else 0,
                }
            )
        return {
            "master_pid": server.master_pid,
            "manager_pid": server.manager_pid,
            "mode": "PROCESS" if server.mode == 2 else "BASE",
            "listen": [f"{p.host}:{p.port}" for p in server.ports],
            "start_time": registry.start_time,
            "uptime": int(time.time()) - registry.start_time,
            "accept_count": registry.accept_count.get(),
            "close_count": registry.close_count.get(),
            "connection_num": registry.connection_num,
            "request_count": sum(w["requests"] for w in workers[:worker_num]),
            "workers": workers,
        }

    def connections(self) -> list[dict[str, Any]]:
        registry = self.server._registry
        assert registry is not None
        rows = []
        for fd in registry.fds():
            row = registry.get(fd)
            if row is not None:
                rows.append({"fd": fd, **row})
        return rows

    def close(self) -> None:
        self.sock.close()


def _read_line(conn: socket.socket, limit: int = 65536) -> bytes:
    data = b""
    while not data.endswith(b"\n") and len(data) < limit:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def inherit_listeners(
    master_pid: int, timeout: float = 5.0
) -> list[tuple[tuple[str, int, int], socket.socket]]:
    """Take the listening sockets of a running server: ``[((host, port, type), socket), ...]``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(control_address(master_pid))
        sock.sendall(json.dumps({"command": "listeners"}).encode() + b"\n")
        message, ancillary, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(64 * 4))
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    described = json.loads(message.split(b"\n", 1)[0])
    return [(tuple(d), socket.socket(fileno=fd)) for d, fd in zip(described, fds, strict=True)]  # type: ignore[misc]


def query(master_pid: int, command: str, timeout: float = 5.0) -> Any:
    """Ask a running server (by its master pid) a control command."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(control_address(master_pid))
        sock.sendall(json.dumps({"command": command}).encode() + b"\n")
        return json.loads(_read_line(sock, 64 * 1024 * 1024))
