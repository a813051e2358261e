"""The core engine with real sockets and real worker processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import time

import pytest
from helpers import APPS, free_port, port_open, process_group_alive, recv_until, unix_open, wait_for

from pyswoole import Server, SettingsError

APP = APPS / "command_server.py"


def start_tcp(run_server, settings=None, port=None):
    port = port or free_port()
    argv = [APP, f"tcp:{port}"] + ([json.dumps(settings)] if settings else [])
    server = run_server(argv, ready=lambda: port_open(port))
    server.port = port
    return server


def ask(sock: socket.socket, command: bytes, timeout: float = 5.0) -> bytes:
    sock.sendall(command)
    sock.settimeout(timeout)
    return sock.recv(65536)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def worker_of(sock: socket.socket) -> int:
    return int(ask(sock, b"whoami").split()[0])


def connections_on_two_workers(server, attempts: int = 40) -> tuple[socket.socket, socket.socket, list]:
    """Open connections until two belong to different workers (the kernel picks the acceptor).

    Both workers must be serving first: the port opens with the first one.
    """
    server.wait_output("worker_start", count=2)
    opened = []
    for _ in range(attempts):
        sock = connect(server.port)
        opened.append(sock)
        owners = {worker_of(s): s for s in opened}
        if len(owners) == 2:
            a, b = owners.values()
            return a, b, opened
        time.sleep(0.02)
    raise AssertionError("all connections landed on one worker")


def test_tcp_echo_events_and_fds(run_server):
    server = start_tcp(run_server)
    with connect(server.port) as a, connect(server.port) as b:
        assert ask(a, b"hello") == b"Server: hello"
        assert ask(b, b"world") == b"Server: world"
        info_a = json.loads(ask(a, b"info"))
        info_b = json.loads(ask(b, b"info"))
    # fds count from 1 in accept order across workers; the readiness probe took one of 1..3 (two
    # workers accept concurrently, so which one is not fixed)
    assert {info_a["socket_fd"], info_b["socket_fd"]} < {1, 2, 3}
    assert info_a["socket_fd"] != info_b["socket_fd"]
    assert info_a["remote_ip"] == "127.0.0.1"
    assert info_a["server_port"] == server.port
    assert info_a["connect_time"] <= time.time()
    out = server.wait_output("close 3")
    assert "connect 1" in out and "connect 2" in out and "connect 3" in out


def test_unix_stream_echo(run_server, tmp_path):
    path = str(tmp_path / "echo.sock")
    run_server([APP, f"unix:{path}"], ready=lambda: unix_open(path))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        assert ask(sock, b"over unix") == b"Server: over unix"


def test_udp_and_unix_dgram_echo(run_server, tmp_path):
    port = free_port(socket.SOCK_DGRAM)
    run_server([APP, f"udp:{port}"], ready=lambda: True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        reply = None
        for _ in range(20):  # the server may still be starting
            sock.sendto(b"ping", ("127.0.0.1", port))
            try:
                reply = sock.recv(100)
                break
            except TimeoutError:
                continue
        assert reply == b"Server: ping"

    path = str(tmp_path / "dgram.sock")
    client_path = str(tmp_path / "client.sock")
    run_server([APP, f"unixdgram:{path}"], ready=lambda: os.path.exists(path))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(client_path)
        sock.settimeout(0.5)
        for _ in range(20):
            sock.sendto(b"dgram", path)
            try:
                assert sock.recv(100) == b"Server: dgram"
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("no reply over the unix datagram socket")


def test_length_framing_random_chunks_and_oversized_packet(run_server):
    port = free_port()
    settings = {
        "open_length_check": True,
        "package_length_type": "N",
        "package_length_offset": 0,
        "package_body_offset": 4,
        "package_max_length": 1024,
    }
    server = start_tcp(run_server, settings, port)
    import random

    rng = random.Random(7)
    packets = [struct.pack("!I", n) + bytes([65 + n % 26]) * n for n in (1, 10, 100, 500, 3)]
    stream = b"".join(packets)
    with connect(port) as good, connect(port) as bad:
        position = 0
        while position < len(stream):
            step = rng.randint(1, 40)
            good.sendall(stream[position : position + step])
            position += step
            time.sleep(0.001)
        expected = b"".join(b"Server: " + p for p in packets)
        assert recv_until(good, lambda d: len(d) >= len(expected)) == expected
        # A declared length over package_max_length closes that connection only.
        bad.sendall(struct.pack("!I", 5000) + b"x" * 10)
        assert recv_until(bad, lambda d: False, timeout=5) == b""
        good.sendall(packets[0])
        assert recv_until(good, lambda d: len(d) >= 13) == b"Server: " + packets[0]
    assert "exceeds package_max_length" in server.output()


def test_eof_split_on_extra_port_and_fallback_events(run_server):
    port, port2 = free_port(), free_port()
    settings = {"_listen": {"port": port2, "settings": {"open_eof_split": True, "package_eof": "\n"}}}
    start_tcp(run_server, settings, port)
    with connect(port2) as sock:
        sock.sendall(b"one\ntw")
        time.sleep(0.05)
        sock.sendall(b"o\nthree\n")
        data = recv_until(sock, lambda d: d.count(b"Server:") == 3)
    assert data == b"Server: one\nServer: two\nServer: three\n"


def test_raising_callback_is_logged_and_worker_keeps_serving(run_server):
    server = start_tcp(run_server)
    with connect(server.port) as sock:
        sock.sendall(b"boom")
        server.wait_output("RuntimeError: boom requested")
        assert ask(sock, b"still there") == b"Server: still there"
    assert "Traceback" in server.output()


def test_kill_worker_respawns_and_other_connections_survive(run_server):
    server = start_tcp(run_server)
    victim, survivor, opened = connections_on_two_workers(server)
    victim_id, victim_pid = (int(x) for x in ask(victim, b"whoami").split())
    os.kill(victim_pid, signal.SIGKILL)
    try:
        assert victim.recv(100) == b""  # FIN (or RST) from the kernel closing the dead worker's socket
    except ConnectionResetError:
        pass
    server.wait_output(f"worker_error {victim_id} {victim_pid} 0 9")
    assert ask(survivor, b"alive?") == b"Server: alive?"
    server.wait_output(f"worker_start {victim_id}", count=2)
    # the respawned worker has the same id and a new pid (which of the two workers the kernel
    # gives the next connection to is not ours to choose in BASE mode)
    respawned = wait_for(
        lambda: next(
            (
                w["pid"]
                for w in json.loads(ask(survivor, b"stats"))["workers"]
                if w["worker_id"] == victim_id and w["pid"] not in (0, victim_pid)
            ),
            None,
        ),
        10,
    )
    assert os.path.exists(f"/proc/{respawned}")
    assert ask(survivor, b"still alive?") == b"Server: still alive?"
    for sock in opened:
        sock.close()


def test_cross_worker_send_close_exists_and_connections(run_server):
    server = start_tcp(run_server)
    a, b, opened = connections_on_two_workers(server)
    fd_a = json.loads(ask(a, b"info"))["socket_fd"]
    fd_b = json.loads(ask(b, b"info"))["socket_fd"]
    assert ask(b, f"send {fd_a} hi from the other worker".encode()) == b"True"
    assert recv_until(a, lambda d: d.endswith(b"worker")) == b"hi from the other worker"
    assert ask(b, f"exists {fd_a}".encode()) == b"True"
    assert fd_a in json.loads(ask(b, b"conns")) and fd_b in json.loads(ask(a, b"conns"))
    assert ask(b, f"bind {fd_a} 42".encode()) == b"True"
    assert json.loads(ask(b, f"info {fd_a}".encode()))["uid"] == 42
    assert ask(b, f"close {fd_a}".encode()) == b"True"
    assert recv_until(a, lambda d: False, timeout=5) == b""
    wait_for(lambda: ask(b, f"exists {fd_a}".encode()) == b"False", 5)
    assert ask(b, b"send 99999 nobody") == b"False"
    server.wait_output(f"close {fd_a} -1")
    for sock in opened:
        sock.close()


def test_pause_and_resume_a_connection_of_another_worker(run_server):
    server = start_tcp(run_server)
    a, b, opened = connections_on_two_workers(server)
    fd_a = json.loads(ask(a, b"info"))["socket_fd"]
    assert ask(b, f"pause {fd_a}".encode()) == b"True"
    # pause() returns once the message is queued; a's worker may still read data that reaches it
    # first (it watches the socket and its mailbox in no fixed order; Swoole's PROCESS mode has the
    # same race). It handles one worker's messages in order: once a later send from b reaches the
    # client, the pause has taken effect.
    assert ask(b, f"send {fd_a} paused".encode()) == b"True"
    assert recv_until(a, lambda d: d.endswith(b"paused")) == b"paused"
    a.sendall(b"waiting")
    a.settimeout(0.5)
    with pytest.raises(TimeoutError):
        a.recv(100)  # not read while paused
    assert ask(b, f"resume {fd_a}".encode()) == b"True"
    assert recv_until(a, lambda d: d.endswith(b"waiting")) == b"Server: waiting"
    for sock in opened:
        sock.close()


def test_send_message_reaches_pipe_message(run_server):
    server = start_tcp(run_server)
    server.wait_output("worker_start", count=2)
    with connect(server.port) as sock:
        me = worker_of(sock)
        other = 1 - me
        assert ask(sock, f"pipe {other} hello".encode()) == b"True"
        server.wait_output(f'pipe_message {other} {me} {{"text": "hello"}}')
        assert ask(sock, f"pipe {me} self".encode()) == b"True"
        server.wait_output(f'pipe_message {me} {me} {{"text": "self"}}')


def test_heartbeat_closes_idle_connection(run_server):
    server = start_tcp(run_server, {"heartbeat_check_interval": 1, "heartbeat_idle_time": 2})
    with connect(server.port) as idle, connect(server.port) as busy:
        started = time.monotonic()
        idle.settimeout(8)
        deadline = started + 6
        closed_at = None
        while time.monotonic() < deadline:
            assert ask(busy, b"tick") == b"Server: tick"
            idle.settimeout(0.5)
            try:
                if idle.recv(10) == b"":
                    closed_at = time.monotonic()
                    break
            except TimeoutError:
                pass
        assert closed_at is not None, "idle connection was not closed"
        assert 1.5 <= closed_at - started <= 5.0
        assert ask(busy, b"tick") == b"Server: tick"


def test_backpressure_buffer_full_and_empty(run_server):
    server = start_tcp(run_server, {"buffer_output_size": 256 * 1024})
    with connect(server.port) as sock:
        sock.sendall(b"flood")
        out = server.wait_output("flood_stopped")
        assert "buffer_full" in out
        sent = int(out.split("flood_stopped ")[1].split()[0])
        assert 0 < sent < 512  # bounded by the kernel buffers plus buffer_output_size, not unbounded
        total = 0
        sock.settimeout(5)
        while total < sent * 65536:
            chunk = sock.recv(1 << 20)
            assert chunk
            total += len(chunk)
        server.wait_output("buffer_empty")


def test_stats_and_max_request_recycling(run_server):
    server = start_tcp(run_server, {"worker_num": 1, "max_request": 5, "max_request_grace": 0})
    with connect(server.port) as sock:
        stats = json.loads(ask(sock, b"stats"))
        assert stats["worker_num"] == 1 and stats["connection_num"] == 1 and stats["accept_count"] == 2
        assert stats["workers"][0]["pid"] > 0
        for i in range(4):  # with "stats", the 5th request: the worker recycles itself
            assert ask(sock, f"msg{i}".encode()) == f"Server: msg{i}".encode()
        assert recv_until(sock, lambda d: False, timeout=5) == b""  # BASE mode: its connections close
    server.wait_output("worker_start 0", count=2)
    assert "worker_error" not in server.output()


@pytest.mark.parametrize(
    ("settings", "threshold", "frozen"),
    [
        ({"worker_num": 1}, 10_000, True),
        ({"worker_num": 1, "gc_threshold": 2000, "gc_freeze": False}, 2000, False),
    ],
)
def test_gc_settings_apply_in_the_worker(run_server, settings, threshold, frozen):
    server = start_tcp(run_server, settings)
    with connect(server.port) as sock:
        state = json.loads(ask(sock, b"gc"))
    assert state["threshold"][0] == threshold and state["enabled"]
    assert (state["frozen"] > 1000) is frozen  # the modules and the server, frozen after start


def test_max_conn_refuses_extra_connections(run_server):
    server = start_tcp(run_server, {"max_conn": 2, "worker_num": 1})
    with connect(server.port) as a, connect(server.port) as b:
        assert ask(a, b"x") == b"Server: x" and ask(b, b"y") == b"Server: y"
        with connect(server.port) as c:
            c.settimeout(5)
            assert c.recv(10) == b""
    assert "max_conn 2 reached" in server.output()


def test_sigterm_graceful_and_no_process_left(run_server):
    server = start_tcp(run_server)
    server.wait_output("worker_start", count=2)
    with connect(server.port) as sock:
        assert ask(sock, b"x") == b"Server: x"
        server.signal(signal.SIGTERM)
        assert recv_until(sock, lambda d: False, timeout=8) == b""
    server.proc.wait(10)
    out = server.output()
    assert out.count("worker_stop") == 2 and "shutdown" in out
    assert not process_group_alive(server.pid)
    assert not port_open(server.port)


def test_shutdown_from_a_worker(run_server):
    server = start_tcp(run_server)
    with connect(server.port) as sock:
        assert ask(sock, b"shutdown") == b"bye"
    assert server.proc.wait(10) == 0
    assert "shutdown" in server.output()


def test_master_sigkill_leaves_no_orphans(run_server):
    server = start_tcp(run_server)
    pids = []
    for _ in range(4):
        with connect(server.port) as sock:
            pids.append(int(ask(sock, b"whoami").split()[1]))
    os.kill(server.pid, signal.SIGKILL)
    server.proc.wait(5)
    wait_for(lambda: not process_group_alive(server.pid), 10, message="workers outlived the master")
    wait_for(lambda: not port_open(server.port), 5)


def test_settings_and_callbacks_are_validated():
    server = Server("127.0.0.1", 0)
    with pytest.raises(SettingsError, match="did you mean 'worker_num'"):
        server.set({"worker_nums": 2})
    with pytest.raises(SettingsError, match="'worker_num' must be int"):
        server.set({"worker_num": "2"})
    with pytest.raises(SettingsError, match="'open_eof_check' must be bool"):
        server.set({"open_eof_check": 1})
    with pytest.raises(SettingsError, match="package_length_type"):
        server.set({"package_length_type": "z"})
    with pytest.raises(ValueError, match="unknown event 'recieve'"):
        server.on("recieve", lambda *a: None)
    with pytest.raises(TypeError, match="must be callable"):
        server.on("receive", 42)
    with pytest.raises(TypeError, match="4 positional arguments"):
        server.on("receive", lambda server, fd: None)
    server.on("onReceive", lambda s, fd, r, d: None)  # Swoole's spelling works too
    assert "receive" in server.callbacks
    port = server.listen("127.0.0.1", 0)
    with pytest.raises(SettingsError, match="whole server"):
        port.set({"worker_num": 1})
