"""Private database servers for tests: a pytest plugin.

Register it from a test module with ``pytest_plugins = ["tests.db_servers"]`` (or from the root
``tests/conftest.py``), then ask for the session-scoped fixtures:

``mariadb`` -> ``MariaDBServer``
    A MariaDB of its own: ``mariadb-install-db`` into a temporary directory, then ``mariadbd`` on a
    free port of 127.0.0.1 and a socket in that directory, started once per test session and killed
    (by pid) at its end. Login: ``user`` root, ``password`` "" (real authentication), database
    ``db`` "test" (created empty). Attributes: ``host``, ``port``, ``socket``, ``user``,
    ``password``, ``db``, ``pid``, ``connect_options`` (keyword arguments for pymysql, asyncmy and
    ``MySQLConnection``/``mysql_pool``: host, port, user, password, database).
    Methods: ``query(sql, args=None, db="test")`` runs one statement on a fresh pymysql connection
    and returns its rows as tuples; ``restart()`` stops the server cleanly and starts it again on
    the same port and data (existing client connections break, as in a real restart); ``stop()``
    and ``start()`` do the halves (a test that stops the server must start it again, in a
    ``finally``: the server is shared by the whole session).

``redis_server`` -> ``RedisServer``
    A ``redis-server`` of its own on a free port, no persistence (``--save '' --appendonly no``).
    Attributes: ``host``, ``port``, ``url``, ``pid``. Methods: ``restart()``, ``stop()``, ``start()``
    (as for MariaDB).

When a binary is missing the tests that need it are skipped, saying which binary; with ``CI=true`` a
missing binary is a failure instead (CI must install ``mariadb-server``/``redis-server``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def require_binary(name: str, package: str) -> str:
    """Path of ``name``; skips the test when it is absent (fails it when CI=true)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if path is None:
        message = f"{name} is not installed (Debian package {package})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must provide it", pytrace=False)
        pytest.skip(message)
    return path


try:  # resolved now: the forked child must not load anything before exec
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None
_PR_SET_PDEATHSIG = 1

# Servers are started from this one long-lived thread: a parent-death signal fires when the thread
# that started the process ends, and restart() may be called from short-lived threads.
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-servers")


def _die_with_parent() -> None:
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _popen(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )


def spawn(command: list[str]) -> subprocess.Popen[bytes]:
    """Start a server that is SIGKILLed if the test process dies without stopping it (a killed
    pytest runs no finalizers)."""
    return _spawner.submit(_popen, command).result()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait, SIGKILL if needed, and reap."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


def wait_until_ready(process: subprocess.Popen[bytes], probe: Any, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{tail(log)}")
        try:
            probe()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                stop_process(process)
                raise RuntimeError(f"{what} not ready after {START_TIMEOUT} s ({exc}):\n{tail(log)}") from exc
        time.sleep(0.02)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


class MariaDBServer:
    host = "127.0.0.1"
    user = "root"
    password = ""
    db = "test"

    def __init__(self, mariadbd: str, install_db: str, directory: Path) -> None:
        self.mariadbd = mariadbd
        self.directory = directory
        self.datadir = directory / "data"
        self.socket = str(directory / "mysqld.sock")
        self.log = directory / "error.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(
            [
                install_db,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *as_root,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def connect_options(self) -> dict[str, Any]:
        return dict(host=self.host, port=self.port, user=self.user, password=self.password, database=self.db)

    def start(self) -> None:
        command = [
            self.mariadbd,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            f"--bind-address={self.host}",
            f"--socket={self.socket}",
            f"--pid-file={self.directory / 'mariadbd.pid'}",
            f"--log-error={self.log}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=32M",
            "--innodb-buffer-pool-dump-at-shutdown=OFF",
            "--innodb-buffer-pool-load-at-startup=OFF",
            "--max-connections=500",
        ]
        if os.geteuid() == 0:
            command.append("--user=root")
        self.process = spawn(command)
        wait_until_ready(self.process, lambda: self.query("SELECT 1", db=None), "mariadbd", self.log)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def query(self, sql: str, args: Any = None, db: str | None = "test") -> tuple[tuple[Any, ...], ...]:
        """Run one statement on a fresh connection (closed before returning); rows as tuples."""
        import pymysql

        options = {**self.connect_options, "database": db, "connect_timeout": 2, "autocommit": True}
        with contextlib.closing(pymysql.connect(**options)) as conn, conn.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()


class RedisServer:
    host = "127.0.0.1"

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.log = directory / "redis.log"
        self.port = free_port()
        self.url = f"redis://{self.host}:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", self.host, "--daemonize", "no"]
        command += ["--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.directory), "--logfile", str(self.log)]
        self.process = spawn(command)
        wait_until_ready(self.process, self._ping, "redis-server", self.log)

    def _ping(self) -> None:
        with socket.create_connection((self.host, self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(16) != b"+PONG\r\n":
                raise RuntimeError("no PONG")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    mariadbd = require_binary("mariadbd", "mariadb-server")
    install_db = require_binary("mariadb-install-db", "mariadb-server")
    directory = Path(tempfile.mkdtemp(prefix="pyswoole-mariadb-"))
    try:
        server = MariaDBServer(mariadbd, install_db, directory)
        try:
            server.start()
            server.query("CREATE DATABASE test", db=None)
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    binary = require_binary("redis-server", "redis-server")
    directory = Path(tempfile.mkdtemp(prefix="pyswoole-redis-"))
    try:
        server = RedisServer(binary, directory)
        try:
            server.start()
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
