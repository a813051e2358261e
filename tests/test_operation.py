"""Running as a service: pid file, JSON log lines, log reopening after rotation, privileges."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket

import pytest
from helpers import APPS, free_port, wait_for

APP = APPS / "command_server.py"


def start(run_server, settings):
    port = free_port()
    server = run_server([APP, f"tcp:{port}", json.dumps({"_mode": "process", **settings})])
    server.port = port
    return server


def ask(port: int, command: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command)
        return sock.recv(1000)


def fire(port: int, command: bytes) -> None:
    """Send a command that gets no reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command)


def test_pid_file_json_log_and_reopen_on_sigrtmin(run_server, tmp_path):
    log_file, pid_file = tmp_path / "server.log", tmp_path / "server.pid"
    server = start(run_server, {"log_file": str(log_file), "log_format": "json", "pid_file": str(pid_file)})
    wait_for(lambda: pid_file.exists() and pid_file.read_text() == str(server.pid), 10)
    server.wait_output("worker_start", count=2)
    fire(server.port, b"boom")
    wait_for(lambda: log_file.exists() and "boom requested" in log_file.read_text(), 10)
    entry = next(json.loads(line) for line in log_file.read_text().splitlines() if "boom" in line)
    assert entry["level"] == "ERROR" and "RuntimeError: boom requested" in entry["traceback"]
    # logrotate: move the file away, signal, and the server writes to a new file
    log_file.rename(tmp_path / "server.log.1")
    server.signal(signal.SIGRTMIN)
    wait_for(lambda: log_file.exists(), 10)
    # each process reopens on its own signal: retry until the worker that gets "boom" has
    wait_for(lambda: fire(server.port, b"boom") or "boom requested" in log_file.read_text(), 10, interval=0.3)
    server.signal(signal.SIGTERM)
    assert server.proc.wait(10) == 0
    assert not pid_file.exists()


@pytest.mark.skipif(os.getuid() != 0, reason="changing user needs root")
def test_workers_run_as_the_configured_user(run_server):
    nobody = pwd.getpwnam("nobody")
    server = start(run_server, {"user": "nobody"})
    server.wait_output("worker_start", count=2)
    _, pid = ask(server.port, b"whoami").split()
    with open(f"/proc/{int(pid)}/status") as f:
        uid_line = next(line for line in f if line.startswith("Uid:"))
    assert int(uid_line.split()[1]) == nobody.pw_uid
    assert os.stat(f"/proc/{server.pid}").st_uid == 0  # the master keeps its privileges
