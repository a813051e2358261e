"""Runtime hooks: unmodified blocking libraries run concurrently inside coroutines, unchanged outside."""

from __future__ import annotations

import select
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql
import pytest
import redis
from helpers import free_port, port_open

from pyswoole import coroutine as co
from pyswoole import runtime

pytest_plugins = ["tests.db_servers"]

SLOW_HTTP = textwrap.dedent(
    """
    import asyncio, ssl, sys

    async def handle(reader, writer):
        request = await reader.readuntil(b"\\r\\n\\r\\n")
        delay = float(request.split(b" ")[1].strip(b"/") or 0)
        await asyncio.sleep(delay)
        body = b"slept %g" % delay
        writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    async def main(port, cert):
        context = None
        if cert:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert)
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024, ssl=context)
        async with server:
            await server.serve_forever()

    asyncio.run(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
    """
)


@pytest.fixture(autouse=True)
def hooks():
    runtime.enable_coroutine()
    yield
    runtime.disable_coroutine()
    assert co.stats()["coroutine_num"] == 0


@pytest.fixture
def slow_http(run_server: Any, tmp_path: Path) -> str:
    script = tmp_path / "slow_http.py"
    script.write_text(SLOW_HTTP)
    port = free_port()
    run_server([script, port], ready=lambda: port_open(port))
    return f"http://127.0.0.1:{port}"


def timed(main: Any, *args: Any) -> float:
    started = time.monotonic()
    co.run(main, *args)
    return time.monotonic() - started


def test_100_hooked_sleeps_overlap_and_sleep_outside_coroutines_is_unchanged():
    woke: list[int] = []

    def sleeper(n: int) -> None:
        time.sleep(1)
        woke.append(n)

    def main() -> None:
        for n in range(100):
            co.go(sleeper, n)

    elapsed = timed(main)
    assert len(woke) == 100
    assert 1.0 <= elapsed < 2.0, elapsed  # one after another: 100 s
    assert time.sleep is not runtime._orig_sleep
    started = time.monotonic()
    time.sleep(0.1)  # outside any coroutine: blocks as before
    assert time.monotonic() - started >= 0.1

    async def async_coroutine() -> None:  # an async coroutine is not a plain one: unchanged too
        started = time.monotonic()
        time.sleep(0.05)
        woke.append(int(time.monotonic() - started >= 0.05))

    co.run(async_coroutine)
    assert woke[-1] == 1


def test_disable_puts_every_original_back():
    import selectors

    runtime.disable()
    assert time.sleep is runtime._orig_sleep
    assert socket.socket is runtime._orig_socket
    assert socket.getaddrinfo is runtime._orig_getaddrinfo
    assert ssl.SSLContext.sslsocket_class is runtime._orig_sslsocket_class
    assert select.select is runtime._orig_select and select.epoll is runtime._orig_epoll
    assert selectors.EpollSelector.select is runtime._orig_selector_select[selectors.EpollSelector]
    assert subprocess.Popen._wait is runtime._orig_popen_wait
    assert runtime.get_hook_flags() == 0
    assert runtime.disable_coroutine is runtime.disable
    runtime.enable_coroutine(runtime.HOOK_SLEEP)
    assert runtime.get_hook_flags() == runtime.HOOK_SLEEP
    assert co.get_options()["hook_flags"] == runtime.HOOK_SLEEP
    runtime.enable_coroutine(False)
    assert time.sleep is runtime._orig_sleep and runtime.get_hook_flags() == 0


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        return client, listener.accept()[0]


def _udp_socket() -> tuple[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return (sock,)


def _timed_recv(sock: socket.socket, seconds: float) -> None:
    sock.settimeout(seconds)
    with pytest.raises(TimeoutError):
        sock.recv(10)


#: flag -> a blocking call of about ``seconds`` that the flag hooks; ``keep(sockets)`` keeps the
#: sockets it makes open until the run ends and gives back the first.
WAITS: dict[str, Callable[[float, Callable[..., socket.socket]], Any]] = {
    "HOOK_SLEEP": lambda seconds, keep: time.sleep(seconds),
    "HOOK_TCP": lambda seconds, keep: _timed_recv(keep(_tcp_pair()), seconds),
    "HOOK_UDP": lambda seconds, keep: _timed_recv(keep(_udp_socket()), seconds),
    "HOOK_UNIX": lambda seconds, keep: _timed_recv(keep(socket.socketpair()), seconds),
    "HOOK_UDG": lambda seconds, keep: _timed_recv(
        keep(socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)), seconds
    ),
    "HOOK_SELECT": lambda seconds, keep: select.select([keep(socket.socketpair())], [], [], seconds),
    # (no timeout: Popen.wait(timeout) polls with time.sleep, which HOOK_SLEEP alone makes cooperative)
    "HOOK_PROC": lambda seconds, keep: subprocess.run(["sleep", str(seconds)], check=True),
}


def _run_waits(name: str, coroutines: int, seconds: float) -> float:
    """``coroutines`` coroutines each make the blocking call of ``WAITS[name]``; the wall time."""
    sockets: list[socket.socket] = []

    def keep(made: tuple[socket.socket, ...]) -> socket.socket:
        sockets.extend(made)
        return made[0]

    def main() -> None:
        for _ in range(coroutines):
            co.go(WAITS[name], seconds, keep)

    try:
        return timed(main)
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize("flag", [*WAITS, "HOOK_FILE"])
def test_each_flag_hooks_its_calls_and_only_them(flag: str):
    """With one flag, its calls overlap in coroutines; every other kind still blocks the loop."""
    runtime.enable_coroutine(getattr(runtime, flag))
    if flag in WAITS:
        elapsed = _run_waits(flag, 3, 0.2)
        assert elapsed < 0.45, f"{flag}: 3 x 0.2 s took {elapsed:.2f} s: not hooked"
    for other in WAITS:
        if other != flag:
            elapsed = _run_waits(other, 2, 0.05)
            assert elapsed >= 0.1, f"{other} overlapped ({elapsed:.3f} s) under {flag} alone"


def test_pymysql_select_sleep_runs_concurrently(mariadb: Any):
    connections = []

    def connect() -> None:
        connections.append(pymysql.connect(**mariadb.connect_options))

    def query(conn: Any, results: list) -> None:
        with conn.cursor() as cursor:
            cursor.execute("SELECT SLEEP(0.5), CONNECTION_ID()")
            results.append(cursor.fetchone())

    def connect_all() -> None:
        for _ in range(50):
            co.go(connect)

    results: list = []

    def query_all() -> None:
        for conn in connections:
            co.go(query, conn, results)

    try:
        timed(connect_all)
        assert len(connections) == 50
        elapsed = timed(query_all)
        outside: list = []
        started = time.monotonic()
        query(connections[0], outside)  # outside any coroutine: blocks as before
        assert outside[0][0] == 0 and time.monotonic() - started >= 0.5
    finally:
        for conn in connections:
            conn.close()
    assert len(results) == 50 and len({row[1] for row in results}) == 50
    assert elapsed < 1.5, elapsed


def test_redis_blpop_waits_concurrently(redis_server: Any):
    got: list[Any] = []
    seen = {}

    def waiter(n: int) -> None:
        client = redis.Redis(host=redis_server.host, port=redis_server.port)
        got.append(client.blpop([f"queue:{n}"], timeout=5))
        client.close()

    def feeder() -> None:
        client = redis.Redis(host=redis_server.host, port=redis_server.port)
        deadline = time.monotonic() + 5
        while client.info("clients")["blocked_clients"] < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        seen["blocked"] = client.info("clients")["blocked_clients"]
        for n in range(50):
            client.rpush(f"queue:{n}", f"item{n}")
        client.close()

    def main() -> None:
        for n in range(50):
            co.go(waiter, n)
        co.go(feeder)

    elapsed = timed(main)
    assert seen["blocked"] == 50
    assert sorted(got) == sorted((f"queue:{n}".encode(), f"item{n}".encode()) for n in range(50))
    assert elapsed < 2.0, elapsed


def test_urllib_requests_overlap(slow_http: str):
    bodies: list[bytes] = []

    def fetch() -> None:
        with urllib.request.urlopen(f"{slow_http}/0.5", timeout=5) as response:
            bodies.append(response.read())

    def main() -> None:
        for _ in range(50):
            co.go(fetch)

    elapsed = timed(main)
    assert bodies == [b"slept 0.5"] * 50
    assert elapsed < 3.0, elapsed  # one after another: 25 s
    started = time.monotonic()
    fetch()  # outside any coroutine: an ordinary blocking request
    assert bodies[-1] == b"slept 0.5" and time.monotonic() - started >= 0.5


def test_ssl_sockets_are_hooked(run_server: Any, tmp_path: Path):
    cert = tmp_path / "cert.pem"
    command = [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
    ]
    subprocess.run(
        [*command, "-keyout", str(cert), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    script = tmp_path / "slow_https.py"
    script.write_text(SLOW_HTTP)
    port = free_port()
    run_server([script, port, cert], ready=lambda: port_open(port))
    context = ssl.create_default_context(cafile=str(cert))
    bodies: list[bytes] = []
    runtime.enable_coroutine(runtime.HOOK_TCP | runtime.HOOK_SSL)  # these two are enough

    def fetch() -> None:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert type(tls) is runtime.HookedSSLSocket
            tls.sendall(b"GET /0.5 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            data = b""
            while chunk := tls.recv(4096):
                data += chunk
            bodies.append(data.rsplit(b"\r\n", 1)[-1])

    def main() -> None:
        for _ in range(10):
            co.go(fetch)

    elapsed = timed(main)
    assert bodies == [b"slept 0.5"] * 10
    assert elapsed < 2.5, elapsed  # one after another: 5 s


def test_accept_connect_and_timeouts_on_hooked_sockets():
    seen: dict[str, Any] = {}

    def server(listener: socket.socket) -> None:
        conn, _ = listener.accept()
        listener.close()
        with conn:
            seen["server_timeout"] = conn.gettimeout()
            data = conn.recv(100)
            time.sleep(0.05)
            conn.sendall(b"Server: " + data)

    def client(port: int) -> None:
        with socket.create_connection(("localhost", port), timeout=2) as sock:
            seen["timeout"] = sock.gettimeout()
            sock.sendall(b"hello")
            seen["reply"] = sock.recv(100)
        a, b = socket.socketpair()
        with a, b:
            a.settimeout(0.05)
            started = time.monotonic()
            try:
                a.recv(10)
            except TimeoutError:
                seen["recv_timeout"] = time.monotonic() - started

    ticks: list[float] = []

    def ticker() -> None:
        for _ in range(5):
            ticks.append(time.monotonic())
            time.sleep(0.01)

    def main() -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        co.go(server, listener)
        co.go(ticker)
        co.go(client, port)

    co.run(main)
    assert seen["reply"] == b"Server: hello"
    assert seen["timeout"] == 2
    assert 0.04 <= seen["recv_timeout"] < 1.0
    assert len(ticks) == 5
    sock = socket.socket()
    assert isinstance(sock, socket.socket) and type(sock) is runtime.HookedSocket
    sock.close()


def test_two_coroutines_on_one_socket_is_a_clear_error(caplog):
    a, b = socket.socketpair()
    errors: list[str] = []
    cids: dict[str, int] = {}

    def reader(name: str) -> None:
        cids[name] = co.get_cid()
        try:
            a.recv(10)
        except RuntimeError as exc:
            errors.append(str(exc))

    def main() -> None:
        co.go(reader, "first")
        co.go(reader, "second")
        b.send(b"x")

    try:
        co.run(main)
    finally:
        a.close()
        b.close()
    assert len(errors) == 1
    assert f"bound to coroutine {cids['first']}" in errors[0]
    assert f"in coroutine {cids['second']} at the same time" in errors[0]


def test_closing_a_socket_wakes_the_coroutine_waiting_on_it():
    errors: list[OSError] = []
    a, b = socket.socketpair()

    def reader() -> None:
        try:
            a.recv(10)
        except OSError as exc:
            errors.append(exc)

    def closer() -> None:
        time.sleep(0.02)
        a.close()

    def main() -> None:
        co.go(reader)
        co.go(closer)

    co.run(main)
    b.close()
    assert len(errors) == 1 and "closed while a coroutine waited" in str(errors[0])


def test_select_poll_epoll_and_selectors_wait_without_blocking_the_loop():
    import selectors

    results: dict[str, Any] = {}
    a, b = socket.socketpair()

    def waiter() -> None:
        results["select"] = select.select([a], [], [], 2)[0] == [a]
        a.recv(1)
        poller = select.poll()
        poller.register(a, select.POLLIN)
        results["poll"] = poller.poll(2000)[0][0] == a.fileno()
        a.recv(1)
        with select.epoll() as ep:
            ep.register(a.fileno(), select.EPOLLIN)
            results["epoll"] = ep.poll(2)[0][0] == a.fileno()
        a.recv(1)
        with selectors.DefaultSelector() as selector:
            selector.register(a, selectors.EVENT_READ)
            results["selectors"] = selector.select(2)[0][0].fileobj is a
        a.recv(1)
        results["select_timeout"] = select.select([a], [], [], 0.02)

    def writer() -> None:
        for _ in range(4):
            time.sleep(0.05)
            b.send(b"x")

    def main() -> None:
        co.go(waiter)
        co.go(writer)

    try:
        elapsed = timed(main)
    finally:
        a.close()
        b.close()
    assert results == {
        "select": True,
        "poll": True,
        "epoll": True,
        "selectors": True,
        "select_timeout": ([], [], []),
    }
    assert elapsed < 2.0  # the writer sleeps 4 x 0.05 s


def test_subprocess_calls_run_concurrently():
    outputs: list[bytes] = []
    codes: list[int] = []

    def child(n: int) -> None:
        outputs.append(subprocess.check_output(["sh", "-c", f"sleep 0.5; echo {n}"]))
        codes.append(subprocess.call(["sh", "-c", "sleep 0.2; exit 4"]))
        proc = subprocess.Popen(["sleep", "5"])
        try:
            proc.wait(0.05)
        except subprocess.TimeoutExpired:
            codes.append(-1)
        finally:
            proc.kill()
            proc.wait()

    def main() -> None:
        for n in range(5):
            co.go(child, n)

    elapsed = timed(main)
    assert sorted(outputs) == [f"{n}\n".encode() for n in range(5)]
    assert sorted(codes) == [-1] * 5 + [4] * 5
    assert elapsed < 2.5, elapsed  # one after another: 3.75 s


def test_hooks_leave_threads_alone():
    result: list[float] = []

    def in_thread() -> None:
        started = time.monotonic()
        time.sleep(0.05)
        with socket.socket() as sock:
            assert sock.gettimeout() is None
        result.append(time.monotonic() - started)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(5)
    assert result and result[0] >= 0.05


def test_plain_server_callbacks_run_in_greenlets_once_hooks_are_on():
    """spawn() (the server's per-event entry) runs plain callbacks as suspendable coroutines."""
    import asyncio

    woke: list[int] = []

    def on_receive(n: int) -> None:
        time.sleep(0.2)
        woke.append(n)

    async def main() -> None:
        tasks = [co.spawn(on_receive, n) for n in range(20)]
        assert all(task is not None for task in tasks)
        await asyncio.gather(*tasks)

    started = time.monotonic()
    asyncio.run(main())
    assert sorted(woke) == list(range(20))
    assert time.monotonic() - started < 1.5  # one after another: 4 s
    assert sys.getrefcount(on_receive) < 10
