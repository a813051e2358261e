"""The command line against real daemons: start, status, connections, reload with new code,
restart without downtime, stop, check, systemd."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import APPS, ROOT, free_port, port_open, process_group_alive, wait_for

from pyswoole.server.operation import pid_alive, read_pid_file


@pytest.fixture
def app(tmp_path: Path):
    path = tmp_path / "app.py"
    shutil.copy(APPS / "cli_app.py", path)
    port = free_port()
    env = {
        **os.environ,
        "APP_PORT": str(port),
        "APP_PID_FILE": str(tmp_path / "app.pid"),
        "APP_LOG_FILE": str(tmp_path / "app.log"),
        "PYTHONPATH": str(ROOT),
    }
    info = {
        "path": path,
        "port": port,
        "env": env,
        "pid_file": tmp_path / "app.pid",
        "log": tmp_path / "app.log",
    }
    masters: list[int] = []
    info["masters"] = masters  # every master pid the test saw: their process groups are cleaned up
    yield info
    masters.append(read_pid_file(str(info["pid_file"])) or 0)
    for master in masters:  # never leave a daemon (or anything it started) behind
        for pid in service_pids(master):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def service_pids(master_pid: int) -> list[int]:
    """The daemon's processes: its master's process group."""
    return process_group_alive(master_pid) if master_pid else []


def cli(app, *args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "pyswoole", *args],
        env=app["env"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ask(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"hi")
        return sock.recv(100).decode()


def test_daemon_round_trip_status_reload_with_new_code_and_stop(app):
    result = cli(app, "start", str(app["path"]), "-d")
    assert result.returncode == 0, result.stderr
    pid = read_pid_file(str(app["pid_file"]))
    assert pid and pid_alive(pid)
    app["masters"].append(pid)
    with open(f"/proc/{pid}/stat") as f:  # detached: its own session, parent init (or a subreaper)
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[3]) != os.getsid(0)  # a session of its own (double fork: no terminal again)
    assert int(fields[4]) == 0  # tty_nr: no controlling terminal
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    wait_for(lambda: port_open(app["port"]), 10)
    wait_for(lambda: len(service_pids(pid)) == 4, 10)  # master, manager, 2 workers: one process group
    first = ask(app["port"]).split()
    assert first[0] == "v1"

    status = cli(app, "status", str(app["path"]), "--json")
    assert status.returncode == 0, status.stderr
    stats = json.loads(status.stdout)
    assert stats["master_pid"] == pid and len(stats["workers"]) == 2
    assert all(w["state"] in ("idle", "busy") and w["rss"] > 0 for w in stats["workers"])
    table = cli(app, "status", "--pid-file", str(app["pid_file"])).stdout
    assert "worker" in table and "rss" in table

    with socket.create_connection(("127.0.0.1", app["port"]), timeout=5) as held:
        held.sendall(b"x")
        held.recv(100)
        rows = json.loads(cli(app, "connections", str(app["path"]), "--json").stdout)
        assert any(row["remote_port"] == held.getsockname()[1] for row in rows)

    # edit the handler, reload: the new code answers, the shared counter carries on
    source = app["path"].read_text().replace('VERSION = "v1"', 'VERSION = "v2"')
    app["path"].write_text(source)
    assert cli(app, "reload", str(app["path"])).returncode == 0
    wait_for(lambda: ask(app["port"]).startswith("v2"), 15)
    _, count, _ = ask(app["port"]).split()
    assert int(count) > int(first[1])

    stop = cli(app, "stop", str(app["path"]))
    assert stop.returncode == 0, stop.stderr
    assert not pid_alive(pid)
    assert not app["pid_file"].exists()
    assert not service_pids(pid)


def test_restart_without_refusing_connections_and_check(app):
    assert cli(app, "start", str(app["path"]), "-d").returncode == 0
    old = read_pid_file(str(app["pid_file"]))
    app["masters"].append(old)
    wait_for(lambda: port_open(app["port"]), 10)
    errors: list[str] = []
    done = threading.Event()

    def hammer():
        while not done.is_set():
            try:
                assert ask(app["port"]).startswith("v1")
            except Exception as exc:
                errors.append(repr(exc))
            time.sleep(0.005)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        result = cli(app, "restart", str(app["path"]))
    finally:
        time.sleep(0.3)
        done.set()
        thread.join(10)
    assert result.returncode == 0, result.stderr
    new = read_pid_file(str(app["pid_file"]))
    app["masters"].append(new)
    assert new != old and pid_alive(new) and not pid_alive(old)
    assert errors == []

    assert cli(app, "check", str(app["path"])).stdout.startswith("ok")
    os.kill(new, signal.SIGKILL)  # the master dies: check cleans up and starts it again
    wait_for(lambda: not pid_alive(new), 10)
    result = cli(app, "check", str(app["path"]))
    assert result.returncode == 0 and result.stdout.startswith("restarted"), result.stderr
    wait_for(lambda: port_open(app["port"]), 10)
    assert ask(app["port"]).startswith("v1")
    assert cli(app, "stop", str(app["path"])).returncode == 0


def test_systemd_unit_and_errors(app):
    unit = cli(app, "systemd", str(app["path"])).stdout
    assert "Restart=always" in unit and "ExecReload=/bin/kill -USR1 $MAINPID" in unit
    assert f"-m pyswoole start {app['path']}" in unit
    missing = cli(app, "status", str(app["path"]))
    assert missing.returncode == 1 and "not running" in missing.stderr
    assert cli(app, "start", "/nonexistent/app.py").returncode == 1
