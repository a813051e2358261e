"""PROCESS mode: the master dispatches connections, which survive worker reloads and crashes."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

import pytest
from helpers import APPS, free_port, process_group_alive, recv_until, wait_for

APP = APPS / "command_server.py"


def start(run_server, settings=None, workers=2):
    port = free_port()
    settings = {"_mode": "process", "worker_num": workers, **(settings or {})}
    server = run_server([APP, f"tcp:{port}", json.dumps(settings)], ready=None)
    server.wait_output("worker_start", count=workers, timeout=15)
    server.port = port
    return server


def ask(sock: socket.socket, command: bytes, timeout: float = 5.0) -> bytes:
    sock.sendall(command)
    sock.settimeout(timeout)
    return sock.recv(65536)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def whoami(sock):
    worker_id, pid = ask(sock, b"whoami").split()
    return int(worker_id), int(pid)


def test_process_tree_and_fd_modulo_dispatch(run_server):
    server = start(run_server, workers=3)
    titles = set()
    for pid in process_group_alive(server.pid):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            titles.add(f.read().split(b"\0")[0].decode())
    assert {"pyswoole: master", "pyswoole: manager", "pyswoole: worker 0", "pyswoole: worker 2"} <= titles
    socks = [connect(server.port) for _ in range(6)]
    for fd, sock in enumerate(socks, start=1):
        assert whoami(sock)[0] == fd % 3  # Swoole's default dispatch_mode 2
        assert ask(sock, b"hi") == b"Server: hi"
    for sock in socks:
        sock.close()


@pytest.mark.parametrize(
    ("mode", "expect"),
    [
        (1, lambda owners: owners == [1, 2, 0, 1, 2, 0]),  # round robin over connections
        (3, lambda owners: sorted(owners) == [0, 0, 1, 1, 2, 2]),  # least-loaded worker
        (4, lambda owners: len(set(owners)) == 1),  # by client IP: one address, one worker
    ],
)
def test_dispatch_modes(run_server, mode, expect):
    server = start(run_server, {"dispatch_mode": mode}, workers=3)
    socks = [connect(server.port) for _ in range(6)]
    owners = [whoami(sock)[0] for sock in socks]
    assert expect(owners), owners
    for sock in socks:
        sock.close()


def test_uid_dispatch_moves_connection_to_uid_worker(run_server):
    server = start(run_server, {"dispatch_mode": 5}, workers=3)
    with connect(server.port) as sock:
        fd = json.loads(ask(sock, b"info"))["socket_fd"]
        assert whoami(sock)[0] == fd % 3
        assert ask(sock, f"bind {fd} 5".encode()) == b"True"
        wait_for(lambda: whoami(sock)[0] == 5 % 3, 5)
        for _ in range(5):
            assert whoami(sock)[0] == 2
            assert ask(sock, b"ok") == b"Server: ok"


def test_connections_survive_reload_and_worker_kill(run_server):
    server = start(run_server)
    socks = [connect(server.port) for _ in range(4)]
    before = {whoami(s)[1] for s in socks}
    server.signal(signal.SIGUSR1)
    server.wait_output("worker_start", count=4, timeout=15)
    wait_for(lambda: {whoami(s)[1] for s in socks}.isdisjoint(before), 10)
    for sock in socks:
        assert ask(sock, b"after reload") == b"Server: after reload"
    victim = socks[0]
    worker_id, pid = whoami(victim)
    os.kill(pid, signal.SIGKILL)
    server.wait_output(f"worker_error {worker_id} {pid} 0 9")
    wait_for(lambda: whoami(victim)[1] != pid, 10)
    assert ask(victim, b"after kill") == b"Server: after kill"
    assert not [line for line in server.output().splitlines() if line.startswith("close ")]  # none dropped
    for sock in socks:
        sock.close()


def test_zero_failed_requests_while_reloading_three_times(run_server):
    server = start(run_server, {"max_wait_time": 2})
    failures: list[str] = []
    done = threading.Event()
    counts = [0]

    def client_loop(new_connection_each_time: bool) -> None:
        sock = None
        while not done.is_set():
            try:
                if sock is None or new_connection_each_time:
                    if sock is not None:
                        sock.close()
                    sock = connect(server.port)
                sock.sendall(b"sleep 0.05")
                reply = recv_until(sock, lambda d: d.endswith(b"slept"), timeout=5)
                if reply != b"slept":
                    failures.append(repr(reply))
                counts[0] += 1
            except OSError as exc:
                failures.append(repr(exc))
                sock = None
        if sock is not None:
            sock.close()

    threads = [threading.Thread(target=client_loop, args=(i % 2 == 0,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        for reload_number in range(1, 4):
            time.sleep(0.6)
            server.signal(signal.SIGUSR1)
            server.wait_output("worker_start", count=2 + 2 * reload_number, timeout=15)
        time.sleep(0.6)
    finally:
        done.set()
        for thread in threads:
            thread.join(10)
    assert counts[0] > 40
    assert failures == []


def test_master_sigkill_leaves_no_orphans_and_frees_the_port(run_server):
    server = start(run_server)
    with connect(server.port) as sock:
        assert ask(sock, b"x") == b"Server: x"
    os.kill(server.pid, signal.SIGKILL)
    wait_for(lambda: not process_group_alive(server.pid), 10, message="children outlived the master")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", server.port))


def test_graceful_sigterm_runs_worker_stop_and_shutdown(run_server):
    server = start(run_server)
    with connect(server.port) as sock:
        assert ask(sock, b"x") == b"Server: x"
        server.signal(signal.SIGTERM)
        assert recv_until(sock, lambda d: False, timeout=8) == b""
    assert server.proc.wait(10) == 0
    out = server.output()
    assert out.count("worker_stop") == 2 and out.rstrip().endswith("shutdown")
    assert not process_group_alive(server.pid)


def test_reload_events_stop_worker_and_status(run_server):
    server = start(run_server)
    with connect(server.port) as sock:
        _, pid = whoami(sock)
        assert json.loads(ask(sock, b"status")) in (1, 2)  # WORKER_BUSY or WORKER_IDLE
        assert ask(sock, b"reload") == b"reloading"
        server.wait_output("after_reload", timeout=15)
        out = server.output()
        assert out.index("before_reload") < out.index("after_reload")
        wait_for(lambda: whoami(sock)[1] != pid, 10)
        other = 1 - whoami(sock)[0]
        assert ask(sock, f"stopworker {other}".encode()) == b"True"
        server.wait_output(f"worker_start {other}", count=3)
        assert ask(sock, b"still") == b"Server: still"


def test_max_memory_recycles_worker_and_keeps_its_connections(run_server):
    server = start(run_server, {"max_memory": 200 * 1024 * 1024}, workers=1)
    with connect(server.port) as sock:
        _, pid = whoami(sock)
        assert ask(sock, b"grow 300") == b"grown"
        server.wait_output("max_memory", timeout=20)
        sock.settimeout(20)
        wait_for(lambda: int(ask(sock, b"whoami", timeout=20).split()[1]) != pid, 30)
        assert ask(sock, b"same connection") == b"Server: same connection"
