"""The client examples against the real tcpS/udpS example servers."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest
from helpers import EXAMPLES, ROOT, free_port, port_open, wait_for


def run(name: str, *args: str, code: int = 0) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout + done.stderr


@pytest.fixture
def tcp_port(run_server: Any) -> int:
    port = free_port()
    run_server(
        [EXAMPLES / "tcpS.py", "--host", "127.0.0.1", "--port", port, "--workers", "1"],
        ready=lambda: port_open(port),
    )
    return port


def test_tcp_clients_against_tcps(tcp_port: int):
    port = str(tcp_port)
    assert run("tcpC_socket.py", "--port", port, "--idle", "0.3") == "Server: hello\n"
    assert run("tcpC_sync.py", "--port", port) == "Server: hello\n"
    assert run("tcpC_async.py", "--port", port) == "Received: Server: Hello\nConnection close\n"
    assert run("client.py", "--port", port) == "Server: hello\n"


def test_udp_client_against_udps(run_server: Any):
    port = free_port(socket.SOCK_DGRAM)
    run_server([EXAMPLES / "udpS.py", "--port", port, "--workers", "1"])

    def answers() -> bool:  # UDP has no "port open": ask until the server is up
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / "udpC.py"), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return done.returncode == 0

    wait_for(answers, 15, interval=0.2, message="udpS never answered")
    assert run("udpC.py", "--port", str(port)) == "Server: hello udp\n"


def test_clients_report_failures():
    port = str(free_port())
    assert run("tcpC_socket.py", "--port", port, code=1) == "socket_connect() failed.\n"
    assert run("tcpC_sync.py", "--port", port, code=1) == "connect failed.\n"
    assert run("tcpC_async.py", "--port", port) == "Connect failed\n"
    assert run("client.py", "--port", port, code=1) == "Connect failed, error code 111\n"
    assert run("udpC.py", "--port", port, code=1) == "recv failed.\n"
