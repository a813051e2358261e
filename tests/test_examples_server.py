"""The seed's server demos (core engine and process model), each run for real on a free port.

Readiness is checked without connecting (the socket's state in ``/proc/net``), because every
accepted connection takes the next fd, and the demos' output depends on exact fds.
"""

from __future__ import annotations

import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import EXAMPLES, ROOT, free_port, process_group_alive, recv_until, wait_for

from pyswoole import Server

TCP_LISTEN = "0A"


def _bound(port: int, tables: tuple[str, ...], state: str | None) -> bool:
    for table in tables:
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and (state is None or fields[3] == state):
                return True
    return False


def listening(port: int) -> bool:
    """A TCP socket listens on ``port`` (checked without opening a connection)."""
    return _bound(port, ("tcp", "tcp6"), TCP_LISTEN)


def udp_bound(port: int) -> bool:
    return _bound(port, ("udp", "udp6"), None)


@pytest.fixture
def demo(run_server):
    """``demo(name, *options)`` runs ``examples/<name>`` on a free port, ready when it listens.

    Each demo's output is printed at teardown, so a failing test shows what its servers printed.
    """
    started = []

    def start(name: str, *options: object, udp: bool = False):
        port = free_port(socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        argv = [EXAMPLES / name, "--host", "127.0.0.1", "--port", port, *options]
        server = run_server(argv, ready=lambda: (udp_bound if udp else listening)(port))
        server.port = port
        started.append(server)
        return server

    yield start
    for server in started:
        print(f"--- output of {server.argv[1:]} (pid {server.pid}):\n{server.output()}")


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def ask(sock: socket.socket, data: bytes, reply_end: bytes = b"\n", timeout: float = 5.0) -> bytes:
    sock.sendall(data)
    return recv_until(sock, lambda got: got.endswith(reply_end), timeout)


def silent(sock: socket.socket, seconds: float) -> bool:
    """Nothing arrives on ``sock`` for ``seconds`` (and the peer did not close it)."""
    sock.settimeout(seconds)
    try:
        sock.recv(1)
    except TimeoutError:
        return True
    return False


def closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    """The server closed ``sock`` (FIN or RST) within ``timeout``, sending nothing first."""
    try:
        return recv_until(sock, lambda got: False, timeout) == b""
    except ConnectionResetError:
        return True


def lines(server) -> list[str]:
    return server.output().splitlines()


# -- udpS.py ---------------------------------------------------------------------------------------


def udp_ask(port: int, data: bytes, timeout: float = 5.0) -> tuple[bytes, tuple, int]:
    """Send one datagram from a new socket; the reply, where it came from, and our port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(timeout)
        client.sendto(data, ("127.0.0.1", port))
        reply, address = client.recvfrom(65536)
        return reply, address, client.getsockname()[1]


def test_udps_replies_and_prints_client_info(demo):
    server = demo("udpS.py", "--workers", "2", udp=True)
    for text in (b"hello udp\n", b"second", b"third"):
        reply, address, client_port = udp_ask(server.port, text)
        assert (reply, address) == (b"Server: " + text, ("127.0.0.1", server.port))
        info = server.wait_output(f"'port': {client_port}}}")
        assert f"'server_port': {server.port}, 'address': '127.0.0.1', 'port': {client_port}}}" in info
        assert "'server_socket': " in info


def test_udps_answers_a_datagram_sent_before_the_workers_started(demo):
    server = demo("udpS.py", "--workers", "1", udp=True)  # the port is bound; the worker may not be up yet
    assert udp_ask(server.port, b"early", timeout=2)[0] == b"Server: early"


# -- a start-up race the demos used to run into ----------------------------------------------------

SLOW_MASTER = """
import sys, time
from pyswoole import Server
from pyswoole.server import master

original = master.Master._main


async def slow_main(self):
    time.sleep(0.5)  # a busy machine: the worker is up before the master's loop runs
    await original(self)


master.Master._main = slow_main
server = Server("127.0.0.1", int(sys.argv[1]))
server.set({"worker_num": 1})
server.on("receive", lambda server, fd, reactor_id, data: server.send(fd, b"pong"))
server.start()
"""


def test_a_worker_ready_before_the_master_still_gets_connections(run_server):
    """A worker that announces itself before the master's loop runs is still handed connections
    (its READY once went nowhere, and every demo's first connection to it hung now and then)."""
    port = free_port()
    run_server(["-c", SLOW_MASTER, port], ready=lambda: listening(port))
    time.sleep(0.8)  # the worker has long sent its READY
    with connect(port) as client:
        client.settimeout(2)
        client.sendall(b"ping")
        assert client.recv(16) == b"pong"


# -- lifecycle.py ----------------------------------------------------------------------------------


def test_lifecycle_prints_workers_and_sessions_and_answers_aaaa(demo):
    server = demo("lifecycle.py")
    server.wait_output("Worker 0 started")
    server.wait_output("Worker 1 started")
    with connect(server.port) as first:
        server.wait_output("Client 1 connect")
        assert ask(first, b"hello") == b"aaaa\n"
        assert ask(first, b"again") == b"aaaa\n"
        with connect(server.port) as second:
            server.wait_output("Client 2 connect")
            assert ask(second, b"x") == b"aaaa\n"
        server.wait_output("Client 2 closed")
    server.wait_output("Client 1 closed")
    assert "Client 3" not in server.output()


def test_lifecycle_reload_rebuilds_process_global_state_only(demo):
    server = demo("lifecycle.py", "--workers", "1", "--verbose")
    server.wait_output("Worker 0 started")
    with connect(server.port) as client:
        ask(client, b"a")
        ask(client, b"b")
        server.wait_output("program=A worker 0 answered=2 fd 1 chunks=2")
    server.signal(signal.SIGUSR1)
    server.wait_output("Worker 0 started", count=2)
    with connect(server.port) as client:
        ask(client, b"c")
        server.wait_output("program=A worker 0 answered=1 fd 2 chunks=1")


# -- callback.py -----------------------------------------------------------------------------------


def test_callback_events_reload_and_shutdown_order(demo):
    server = demo("callback.py", "--trace")
    server.wait_output("trace: worker_start 0")
    server.wait_output("trace: worker_start 1")
    output = server.output()
    assert "trace: start" in output and "trace: manager_start" in output
    with connect(server.port) as client:
        server.wait_output("onConnect")
        client.sendall(b"hello")
        server.wait_output("onReceive")
        assert silent(client, 0.3), "callback.py must not reply"
    server.wait_output("onClose")
    assert "trace: connect 1 1" in server.output()  # fd 1 on worker 1 = 1 % 2

    server.signal(signal.SIGUSR1)  # reload: both workers stop and start again
    server.wait_output("worker stop", count=2)
    server.wait_output("trace: after_reload")
    assert "trace: before_reload" in server.output()
    server.wait_output("trace: worker_start 0", count=2)
    server.wait_output("trace: worker_start 1", count=2)

    server.signal(signal.SIGTERM)
    server.proc.wait(10)
    events = lines(server)
    assert events.count("worker stop") == 4
    last_stop = max(i for i, line in enumerate(events) if line == "worker stop")
    assert last_stop < events.index("trace: manager_stop") < events.index("trace: shutdown")
    assert "onPacket" not in events
    assert not process_group_alive(server.pid)


def test_callback_registers_every_server_event():
    registered = set(re.findall(r'@server\.on\("(\w+)"\)', (EXAMPLES / "callback.py").read_text()))
    assert registered == set(Server.EVENTS)


def test_plain_server_has_no_request_event():
    with pytest.raises(ValueError, match="unknown event 'request'"):
        Server("127.0.0.1", 0).on("request", lambda request, response: None)


# -- protocol.py -----------------------------------------------------------------------------------


def length_packet(body: bytes) -> bytes:
    return struct.pack(">H", len(body)) + body


def read_replies(sock: socket.socket, bodies: list[bytes]) -> bool:
    """Read the length-framed ``Server: <body>`` replies to ``bodies``; True if they are right."""
    expected = b"".join(length_packet((b"Server: " + body)[:0xFFFF]) for body in bodies)
    return recv_until(sock, lambda got: len(got) >= len(expected)) == expected


def test_protocol_length_and_eof_ports_split_whatever_the_chunking(demo):
    eof_port = free_port()
    server = demo("protocol.py", "--eof-port", eof_port)
    wait_for(lambda: listening(eof_port), 10)
    rng = random.Random(7)
    bodies = [b"hello", b"", b"x" * 1000, bytes(range(256)) * 4, b"\r\n inside a length packet"]
    stream = b"".join(length_packet(body) for body in bodies)
    with connect(server.port) as client:
        position = 0
        while position < len(stream):  # random re-chunking, packets split and coalesced
            size = rng.randint(1, 300)
            client.sendall(stream[position : position + size])
            position += size
        assert read_replies(client, bodies)
        biggest = b"b" * 65535  # the largest body a 16-bit length allows: echoed cut to fit the reply
        client.sendall(length_packet(biggest))
        assert read_replies(client, [biggest])
    server.wait_output("length packet from 1: hello")

    with connect(eof_port) as client:
        for piece in (b"hel", b"lo\r", b"\nwor", b"ld\r\n", b"a\r\nb\r\n"):
            client.sendall(piece)
            time.sleep(0.01)
        expected = b"Server: hello\r\nServer: world\r\nServer: a\r\nServer: b\r\n"
        assert recv_until(client, lambda got: len(got) >= len(expected)) == expected
    for line in ("eof packet from 2: hello", "eof packet from 2: world", "eof packet from 2: b"):
        assert line in server.wait_output(line)


def test_protocol_oversized_line_closes_only_that_connection(demo):
    eof_port = free_port()
    server = demo("protocol.py", "--eof-port", eof_port)
    wait_for(lambda: listening(eof_port), 10)
    with connect(server.port) as length_client, connect(eof_port) as flooder:
        length_client.sendall(length_packet(b"before"))
        assert read_replies(length_client, [b"before"])
        flooder.sendall(b"y" * 81921)  # no terminator within package_max_length
        assert closed_by_peer(flooder)
        server.wait_output("package_max_length 81920")
        length_client.sendall(length_packet(b"after"))
        assert read_replies(length_client, [b"after"])


# -- timer.py --------------------------------------------------------------------------------------


def test_timer_prints_the_original_timeline_and_ends_when_no_timer_is_left():
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, EXAMPLES / "timer.py", "--scale", "0.02"],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=ROOT,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    expected = ["1", "A - B", "after 3000ms.", "2", "A - B", "3", "A - B", "4", "A - B", "5", "A - B"]
    assert result.stdout.splitlines() == expected
    assert elapsed >= 10 * 0.02 * 0.9  # the 5th tick comes at 10 s (scaled)


# -- sleep.py / exit.py / while.py -----------------------------------------------------------------


def timed_hello(port: int, text: bytes, reply: bytes = b"Hello\n") -> tuple[socket.socket, float]:
    sock = connect(port)
    started = time.monotonic()
    assert ask(sock, text) == reply
    return sock, time.monotonic() - started


def test_sleep_blocks_the_only_worker(demo):
    server = demo("sleep.py", "--sleep", "0.6")
    first, _ = timed_hello(server.port, b"hi\n")
    second, waited = timed_hello(server.port, b"yo\n")
    with first, second:
        assert waited >= 0.3, "the second Hello must wait for the first handler's blocking sleep"
        assert recv_until(first, lambda got: got.endswith(b"\n\n")) == b"Swoole:hi\n\n"
        assert recv_until(second, lambda got: got.endswith(b"\n\n")) == b"Swoole:yo\n\n"


def test_sleep_with_hooks_does_not_block(demo):
    server = demo("sleep.py", "--sleep", "0.6", "--enable-coroutine")
    first, _ = timed_hello(server.port, b"hi\n")
    second, waited = timed_hello(server.port, b"yo\n")
    with first, second:
        assert waited < 0.3, "a hooked sleep must not hold up the other client"
        assert recv_until(first, lambda got: got.endswith(b"\n\n")) == b"Swoole:hi\n\n"
        assert recv_until(second, lambda got: got.endswith(b"\n\n")) == b"Swoole:yo\n\n"


def test_exit_catches_the_exception_and_keeps_the_connection(demo):
    server = demo("exit.py", "--sleep", "0.5")
    first, _ = timed_hello(server.port, b"one")
    second, waited = timed_hello(server.port, b"two")
    with first, second:
        assert waited < 0.3, "hooked sleep: the second client is answered at once"
        server.wait_output("aaa ! \n", count=2)
        assert ask(first, b"again") == b"Hello\n"  # connection and worker still alive
        server.wait_output("aaa ! \n", count=3)
        assert silent(second, 0.2)  # the "Swoole: ..." reply is never reached
    assert "Traceback" not in server.output()


def test_while_freezes_the_worker_and_shutdown_kills_it(demo):
    server = demo("while.py", "--max-wait-time", "0.5")
    with connect(server.port) as stuck:
        assert ask(stuck, b"go") == b"hello\n"
        with connect(server.port) as other:  # accepted by the master, never answered
            other.sendall(b"anyone?")
            assert silent(other, 0.5)
            started = time.monotonic()
            server.signal(signal.SIGTERM)
            server.proc.wait(10)
            assert time.monotonic() - started < 6
    assert "did not stop" in server.output()
    wait_for(lambda: not process_group_alive(server.pid), 5, message="processes left behind")


# -- isolation.py / multiprocess_share_data.py -----------------------------------------------------


def test_isolation_counts_per_worker_by_fd(demo):
    server = demo("isolation.py")
    with connect(server.port) as fd1:
        assert [ask(fd1, b"m") for _ in range(3)] == [b"1\n", b"2\n", b"3\n"]  # worker 1
        with connect(server.port) as fd2, connect(server.port) as fd3, connect(server.port) as fd4:
            assert ask(fd2, b"m") == b"1\n"  # worker 0
            assert ask(fd3, b"m") == b"4\n"  # worker 1 again
            assert ask(fd4, b"m") == b"2\n"  # worker 0 again


def open_in_order(server, count: int, first_fd: int = 1) -> list[socket.socket]:
    """Open ``count`` connections one at a time, each accepted before the next."""
    opened = []
    for fd in range(first_fd, first_fd + count):
        opened.append(connect(server.port))
        server.wait_output(f"connection open: {fd}\n")
    return opened


def dumps(server) -> list[str]:
    return [line for line in lines(server) if line.startswith("[")]


def test_multiprocess_share_data_lists_are_per_worker(demo):
    server = demo("multiprocess_share_data.py")
    opened = open_in_order(server, 4)
    try:
        server.wait_output("[2, 4]")
        assert dumps(server) == ["[1]", "[2]", "[1, 3]", "[2, 4]"]
        assert silent(opened[0], 0.1)
        opened.pop(0).close()  # fd 1 (worker 1) closes: fd 5 (worker 1) sees only fd 3
        time.sleep(0.2)
        opened += open_in_order(server, 1, first_fd=5)
        server.wait_output("[3, 5]")
    finally:
        for sock in opened:
            sock.close()


def test_multiprocess_share_data_shared_table_sees_every_fd(demo):
    server = demo("multiprocess_share_data.py", "--shared")
    opened = open_in_order(server, 4)
    try:
        server.wait_output("[1, 2, 3, 4]")
        assert dumps(server) == ["[1]", "[1, 2]", "[1, 2, 3]", "[1, 2, 3, 4]"]
        opened.pop(0).close()
        time.sleep(0.2)
        opened += open_in_order(server, 1, first_fd=5)
        server.wait_output("[2, 3, 4, 5]")
    finally:
        for sock in opened:
            sock.close()


# -- examples/README.md ----------------------------------------------------------------------------


def test_readme_links_point_at_existing_examples():
    readme = (EXAMPLES / "README.md").read_text()
    linked = set(re.findall(r"\]\(([^)#]+)\)", readme))
    missing = [link for link in linked if not link.startswith("http") and not (EXAMPLES / link).exists()]
    assert linked and not missing, f"README links to missing files: {missing}"
