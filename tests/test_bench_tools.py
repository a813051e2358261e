"""The benchmark tools measure for real: the C echo client, the harness and the bare servers."""

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
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH_DIR))

import harness  # noqa: E402
from harness import BenchError, Contender  # noqa: E402

pytestmark = pytest.mark.timeout(30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_contender(name: str, script: str | Path, port: int | None = None) -> Contender:
    port = port or free_port()
    return Contender(name, harness.python_server(script, "--port", str(port)), port, start_timeout=10)


@pytest.fixture(scope="module")
def echo_server() -> Iterator[harness.RunningServer]:
    harness.build_echo_client()
    with python_contender("test_bare_echo", BENCH_DIR / "bare_uvloop_echo.py").start() as server:
        yield server


@pytest.fixture(scope="module")
def http_server() -> Iterator[harness.RunningServer]:
    contender = python_contender("test_bare_http", BENCH_DIR / "bare_uvloop_http.py")
    contender.ready = harness.answers(harness.http_get("/"), b"HTTP/1.1 200 OK\r\n")
    with contender.start() as server:
        assert not harness.answers(harness.http_get("/"), b"HTTP/1.1 404")(contender)
        yield server


@contextlib.contextmanager
def tampering_server(change_reply: bool) -> Iterator[int]:
    """A thread-per-connection server answering every 68 bytes with 68 bytes (one altered if asked)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while True:
                data = b""
                while len(data) < 68:
                    chunk = conn.recv(68 - len(data))
                    if not chunk:
                        return
                    data += chunk
                conn.sendall(data[:-1] + b"!" if change_reply else data)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield port
    finally:
        listener.close()


def test_echo_client_measures_length_framed_echo(echo_server: harness.RunningServer) -> None:
    result = harness.echo_load(echo_server, connections=8, duration=0.5, warmup=0.1)
    assert result["connected"] == 8
    assert result["errors"] == 0 and result["setup_errors"] == 0
    assert 0.45 < result["seconds"] < 1.0
    assert result["msgs"] > 500
    assert result["msg_per_s"] == pytest.approx(result["msgs"] / result["seconds"], rel=0.01)
    assert 0 < result["p50_us"] <= result["p99_us"]
    assert result["total_msgs"] > result["msgs"] and result["total_seconds"] > result["seconds"]
    # the server's CPU cost: a few µs per echo on any machine
    assert 0.2 < result["server_us_per_msg"] < 1000
    assert 0 < result["server_cpu_share"] < 1.2


def test_echo_client_handles_large_messages(echo_server: harness.RunningServer) -> None:
    # 200 KB messages arrive in many segments on both sides.
    result = harness.echo_load(
        echo_server.contender.port, connections=2, payload=200_000, duration=0.3, warmup=0
    )
    assert result["errors"] == 0 and result["msgs"] > 10


def test_echo_client_rejects_altered_replies() -> None:
    harness.build_echo_client()
    with tampering_server(change_reply=True) as port:
        with pytest.raises(BenchError, match="no connection could be set up"):
            harness.echo_load(port, connections=3, duration=0.2, warmup=0)
        # raw mode checks the reply length only
        result = harness.echo_load(port, mode="raw", payload=68, connections=3, duration=0.2, warmup=0)
        assert result["errors"] == 0 and result["msgs"] > 0
    with tampering_server(change_reply=False) as port:
        result = harness.echo_load(port, connections=3, duration=0.2, warmup=0)
        assert result["errors"] == 0 and result["msgs"] > 0


WEBSOCKETS_SERVER = """
import asyncio, sys, websockets
chat_room = set()
async def handle(ws):
    if ws.request.path == "/chat":  # every message goes to everyone in the room
        chat_room.add(ws)
        try:
            async for message in ws: websockets.broadcast(chat_room, "Client: " + message)
        finally:
            chat_room.discard(ws)
    else:  # echo
        async for message in ws: await ws.send(message)
async def main():
    async with websockets.serve(handle, "127.0.0.1", int(sys.argv[1]), compression=None):
        await asyncio.Future()
asyncio.run(main())
"""


@pytest.fixture(scope="module")
def websockets_server() -> Iterator[harness.RunningServer]:
    port = free_port()
    contender = Contender("test_websockets", [sys.executable, "-c", WEBSOCKETS_SERVER, str(port)], port)
    with contender.start() as server:
        yield server


def test_echo_client_websocket_mode_against_websockets_library(
    websockets_server: harness.RunningServer,
) -> None:
    port = websockets_server.contender.port
    result = harness.echo_load(port, mode="ws", connections=4, payload=300, duration=0.5, warmup=0)
    websockets_server.check_alive()
    assert result["errors"] == 0 and result["setup_errors"] == 0
    assert result["connected"] == 4 and result["msgs"] > 100


def test_broadcast_mode_times_delivery_to_every_connection(websockets_server: harness.RunningServer) -> None:
    port = websockets_server.contender.port
    result = harness.broadcast_load(port, path="/chat", connections=50, rounds=3, payload=200, interval=0.01)
    assert result["connected"] == 50 and result["errors"] == 0 and result["rounds_completed"] == 3
    assert 0 < result["first_median_ms"] <= result["median_ms"] <= result["max_ms"]
    with pytest.raises(BenchError, match="'rounds_completed': 0"):
        # an echo answers the sender only: the round cannot complete
        harness.broadcast_load(port, path="/", connections=2, rounds=1, round_timeout=0.1)


def test_idle_connections_are_held_until_released(echo_server: harness.RunningServer) -> None:
    def open_fds() -> int:
        return len(os.listdir(f"/proc/{echo_server.pid}/fd"))

    before = open_fds()
    with harness.IdleConnections(echo_server.contender.port, 300) as idle:
        assert idle.ready["connected"] == 300 and idle.ready["errors"] == 0
        assert open_fds() >= before + 300
        process = idle.process
    assert process is not None and process.returncode == 0
    deadline = time.monotonic() + 5
    while open_fds() > before + 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds() <= before + 5


def test_idle_memory_reports_growth_per_connection(echo_server: harness.RunningServer) -> None:
    figures = harness.idle_memory(echo_server, 2000, settle=0.2)
    assert figures["connected"] == 2000
    assert figures["rss_after_kib"] > figures["rss_before_kib"]
    assert 0 < figures["kib_per_conn"] < 50


def test_bare_echo_server_reassembles_split_frames(echo_server: harness.RunningServer) -> None:
    frames = [len(p).to_bytes(4, "big") + p for p in (b"first", b"", b"x" * 5000, b"last")]
    stream = b"".join(frames)
    with socket.create_connection(("127.0.0.1", echo_server.contender.port), timeout=5) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(stream), 3):  # 3-byte pieces: prefixes split too
            conn.sendall(stream[i : i + 3])
            if i < 30:
                time.sleep(0.002)
        received = b""
        while len(received) < len(stream):
            received += conn.recv(65536)
    assert received == stream


def read_until_closed(conn: socket.socket) -> bytes:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


def test_bare_http_server_pipelining_keep_alive_and_bad_requests(http_server: harness.RunningServer) -> None:
    address = ("127.0.0.1", http_server.contender.port)
    with socket.create_connection(address, timeout=5) as conn:
        conn.sendall(
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 3
            + b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        replies = read_until_closed(conn).split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(replies) == 4
    assert all(r.endswith(b"\r\n\r\nHello, World!") and b"Content-Length: 13\r\n" in r for r in replies)
    assert [b"Connection: close" in r for r in replies] == [False, False, False, True]
    with socket.create_connection(address, timeout=5) as conn:
        conn.sendall(b"NOT HTTP\x00\r\n\r\n")
        assert read_until_closed(conn).startswith(b"HTTP/1.1 400 ")


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (bench/setup.sh installs it)")
def test_wrk_load_measures_the_bare_http_server(http_server: harness.RunningServer) -> None:
    url = f"http://127.0.0.1:{http_server.contender.port}/"
    result = harness.wrk_load(url, connections=4, duration=1, warmup=0, pipeline=8, server=http_server)
    assert result["errors"] == 0 and result["requests"] > 1000
    assert result["requests_per_s"] == pytest.approx(result["requests"] / result["seconds"])
    assert 0 < result["server_us_per_request"] < 1000
    # wrk's latency histogram is broken with pipelining: no figures rather than wrong ones
    assert result["p50_us"] is None or 0 < result["p50_us"] <= result["p99_us"]


def test_redis_benchmark_load_measures_redis_server() -> None:
    port = free_port()
    command = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]
    contender = Contender("test_redis", command, port, ready=harness.answers(b"PING\r\n", b"+PONG"))
    with contender.start():
        assert not harness.answers(b"PING\r\n", b"+NOPE")(contender)
        rates = harness.redis_benchmark_load(
            port, tests="ping,set", connections=10, requests=5000, pipeline=4
        )
    assert set(rates) == {"PING_INLINE", "PING_MBULK", "SET"}
    assert all(rate > 1000 for rate in rates.values())


def test_running_server_stops_its_whole_process_tree() -> None:
    port = free_port()
    # A parent that forks a child ignoring SIGTERM, then listens: both must be gone after stop().
    code = (
        "import os, signal, socket, sys, time\n"
        "if os.fork() == 0:\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN); os.setsid(); time.sleep(60); sys.exit()\n"
        "s = socket.create_server(('127.0.0.1', int(sys.argv[1]))); time.sleep(60)\n"
    )
    server = Contender("test_tree", [sys.executable, "-c", code, str(port)], port, start_timeout=10).start()
    try:
        tree = server.tree()
        assert len(tree) == 2 and tree[0].pid == server.pid
        assert harness.worker_processes(tree) == [tree[1]]
        assert server.rss_kib() == sum(p.rss_kib for p in tree)
    finally:
        server.stop(grace=0.2)
    for info in tree:
        assert harness.process_info(info.pid) is None or harness._is_zombie(info.pid)


def test_server_on_a_busy_port_is_refused(echo_server: harness.RunningServer) -> None:
    contender = python_contender("test_busy", BENCH_DIR / "bare_uvloop_echo.py", echo_server.contender.port)
    with pytest.raises(BenchError, match="already in use"):
        contender.start()


def test_server_that_dies_at_start_is_reported() -> None:
    contender = Contender("test_dies", [sys.executable, "-c", "raise SystemExit('boom')"], free_port())
    with pytest.raises(BenchError, match="boom"):
        contender.start()


def test_alternate_runs_contenders_in_turn_and_medians(echo_server: harness.RunningServer) -> None:
    order = []
    listen = (
        "import socket, sys, time; s = socket.create_server(('127.0.0.1', int(sys.argv[1]))); time.sleep(60)"
    )
    contenders = []
    for name in ("a", "b"):
        port = free_port()
        contenders.append(Contender(name, [sys.executable, "-S", "-c", listen, str(port)], port))

    def measure(server: harness.RunningServer) -> harness.Sample:
        order.append(server.contender.name)
        return {"value": float(len(order))}

    samples = harness.alternate(contenders, 2, measure)
    assert order == ["a", "b", "a", "b"]
    assert harness.medians(samples) == {"a": {"value": 2.0}, "b": {"value": 3.0}}


def test_write_section_replaces_only_its_own_section(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    harness.write_section("one", "first version", results)
    harness.write_section("two", "other", results)
    harness.write_section("one", "second version", results)
    text = results.read_text()
    assert text.startswith("# Benchmark results")
    assert "first version" not in text and text.count("second version") == 1 and "other" in text
    assert text.index("<!-- bench:one -->") < text.index("<!-- bench:two -->")


def test_environment_names_machine_versions_and_parameters() -> None:
    text = harness.environment(
        packages=["pytest"], tools=[["gcc", "--version"]], parameters={"connections": 50}
    )
    assert f"{os.cpu_count()} CPUs" in text and os.uname().release in text
    assert "pytest " in text and "gcc " in text and "connections 50" in text


def test_echo_client_reports_json_when_nothing_listens() -> None:
    client = harness.build_echo_client()
    result = subprocess.run(
        [str(client), "--port", str(free_port()), "-c", "2", "-d", "0.2", "-w", "0"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["connect_errors"] == 2


def test_bench_session_applies_the_parsed_options_and_restores_signal_handlers() -> None:
    handler = signal.getsignal(signal.SIGTERM)
    harness.bench_arguments("test").parse_args(["--nice", "3"])
    try:
        with harness.bench_session():
            assert harness.pinned(1, ["true"]) == ["taskset", "-c", "1", "nice", "-n", "3", "true"]
            assert signal.getsignal(signal.SIGTERM) is not handler
            with pytest.raises(SystemExit):
                os.kill(os.getpid(), signal.SIGTERM)  # unwinds the stack, stopping every server
        assert signal.getsignal(signal.SIGTERM) is handler
        assert "both at nice 3" in harness.environment()  # the report names the session's priority
    finally:
        harness.bench_arguments("test").parse_args([])
        with harness.bench_session():
            pass
    assert harness.pinned(1, ["true"]) == ["taskset", "-c", "1", "true"]
