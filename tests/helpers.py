"""Test helpers: free ports, waiting with a deadline, and server processes that are always cleaned up."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
APPS = Path(__file__).resolve().parent / "apps"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02, message: str = ""
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(message or f"condition not met within {timeout} s")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def unix_open(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            sock.connect(path)
            return True
    except OSError:
        return False


def process_group_alive(pgid: int) -> list[int]:
    """Pids still in process group ``pgid``."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            alive.append(int(entry.name))
    return alive


class ServerProcess:
    """A server script run as its own process group; output goes to a file the test can read."""

    def __init__(self, argv: Sequence[str], workdir: Path, *, env: dict[str, str] | None = None):
        self.argv = [sys.executable, *argv]
        self.log_path = workdir / f"server-{os.getpid()}-{time.monotonic_ns()}.log"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self, ready: Callable[[], object] | None = None, timeout: float = 15.0) -> ServerProcess:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=ROOT,
            start_new_session=True,
        )
        if ready is not None:
            try:
                wait_for(
                    lambda: ready() or self.proc.poll() is not None,
                    timeout,
                    message="server did not get ready",
                )
            except BaseException:
                self.stop()
                raise
            if self.proc.poll() is not None:
                output = self.output()
                self.stop()
                raise RuntimeError(f"server exited early with {self.proc.returncode}:\n{output}")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_output(self, text: str, timeout: float = 10.0, count: int = 1) -> str:
        wait_for(
            lambda: self.output().count(text) >= count,
            timeout,
            message=f"{text!r} not in output:\n{self.output()}",
        )
        return self.output()

    def signal(self, signo: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signo)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the master, wait, then SIGKILL whatever is left of the group."""
        if self.proc is None:
            return None
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(Exception):
            wait_for(lambda: not process_group_alive(pgid), 5.0)
        for pid in process_group_alive(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def recv_exactly(sock: socket.socket, size: int, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def recv_until(sock: socket.socket, predicate: Callable[[bytes], bool], timeout: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout
    data = b""
    while not predicate(data):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"got only {data!r}")
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data
