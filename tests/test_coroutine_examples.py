"""The coroutine and generator examples, run for real as programs."""

from __future__ import annotations

import ast
import os
import re
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from helpers import EXAMPLES, ROOT, free_port

TIMEOUT = 20


def run(name: str, *args: str) -> tuple[str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout, time.monotonic() - started


class Reader:
    """A running example whose stdout is read as it comes, with deadlines."""

    def __init__(self, name: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / name), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.data = b""

    def read_until(self, predicate: Any, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while not predicate(self.data):
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                raise AssertionError(f"timed out; output so far: {self.data[-200:]!r}")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                break
            self.data += chunk
        return self.data

    def finish(self) -> tuple[bytes, int]:
        out, err = self.proc.communicate(timeout=TIMEOUT)
        assert b"Traceback" not in err, err.decode()
        return self.data + out, self.proc.returncode

    def close(self) -> None:
        self.selector.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)


@pytest.fixture
def reader() -> Iterator[Any]:
    started: list[Reader] = []

    def start(name: str, *args: str) -> Reader:
        started.append(Reader(name, *args))
        return started[-1]

    yield start
    for proc in started:
        proc.close()


@pytest.mark.parametrize("name", ["co.py", "co_runtime.py"])
def test_1000_sleepers_print_every_a_at_once_then_every_b(reader: Any, name: str):
    proc = reader(name, "--count", "1000", "--seconds", "1.5")
    started = time.monotonic()
    early = proc.read_until(lambda data: data.count(b"A") == 1000, 10)
    assert b"B" not in early
    out, code = proc.finish()
    elapsed = time.monotonic() - started
    assert code == 0
    assert out == b"A" * 1000 + b"B" * 1000
    assert 1.5 <= elapsed < 5.0, elapsed  # one after another: 1500 s


def test_co_order_prints_the_exact_order(reader: Any):
    proc = reader("co_order.py", "--scale", "0.25")
    started = time.monotonic()
    first = proc.read_until(lambda data: data.endswith(b"end\n"), 10)
    assert time.monotonic() - started < 2.0
    assert first.decode().splitlines() == [
        "main co start 1",
        "child co start 2",
        "child co start 3",
        "main co end 1",
        "end",
    ]
    out, code = proc.finish()
    assert code == 0
    assert out.decode().splitlines()[5:] == ["child co end 3", "child co end 2"]
    assert time.monotonic() - started >= 0.5  # the longer child slept 2 x 0.25 s


def test_coroutine_prints_ab_then_c_and_the_defers_lifo(reader: Any):
    proc = reader("coroutine.py", "--seconds", "1.5")
    started = time.monotonic()
    assert proc.read_until(lambda data: len(data) >= 2, 10) == b"ab"  # "c" comes 1.5 s later
    out, code = proc.finish()
    assert code == 0 and out == b"abc~b~a"
    assert 1.5 <= time.monotonic() - started < 10


def test_coroutine_exec_runs_the_commands_at_once():
    out, _ = run("coroutine_exec.py", "--count", "10", "--seconds", "1", "--verbose")
    lines = out.splitlines()
    assert lines.count("{'code': 0, 'signal': 0, 'output': ''}") == 10
    took = float(re.fullmatch(r"10 commands in ([\d.]+) s", lines[-1]).group(1))
    assert took < 5.0, (
        took
    )  # concurrently ~1 s (the interpreter's start-up not counted); one after another: 10 s
    assert run("coroutine_exec.py", "--count", "2", "--seconds", "0.1")[0] == ""


def test_go_defer_prints_hello_world():
    assert run("go_defer.py")[0] == "hello world!"


class _Slow(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        started = time.monotonic()
        time.sleep(0.5)
        _Slow.spans.append((started, time.monotonic()))
        status = 301 if self.server.server_port == _Slow.redirecting else 200  # type: ignore[attr-defined]
        self.send_response(status)
        if status == 301:
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass

    redirecting = 0
    spans: ClassVar[list[tuple[float, float]]] = []  # (arrival, answer) of each request


@pytest.fixture
def http_servers() -> Iterator[tuple[int, int]]:
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Slow) for _ in range(2)]
    _Slow.redirecting = servers[1].server_port
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    yield servers[0].server_port, servers[1].server_port
    for server in servers:
        server.shutdown()
        server.server_close()


def test_go_waitgroup_waits_for_both_requests_at_once(http_servers: tuple[int, int]):
    ok, redirect = http_servers
    _Slow.spans.clear()
    out, _ = run(
        "go_waitGroup.py", "--url", f"http://127.0.0.1:{ok}/", "--url", f"http://localhost:{redirect}/"
    )
    result = ast.literal_eval(out)  # the printed dict
    assert result == {"127.0.0.1": 200, "localhost": 301}
    first, second = sorted(_Slow.spans)
    assert second[0] < first[1]  # the second request came while the first one was served
    out, _ = run("go_waitGroup.py", "--url", f"http://127.0.0.1:{free_port()}/", "--timeout", "1")
    assert ast.literal_eval(out) == {"127.0.0.1": -1}


def test_yield_prints_the_original_output():
    expected = (
        "========== yield ===========\n1\n2\n3\n\n"
        "========== send ===========\n0\n1\n2\n3\n\n"
        "========== 生成键值对的生成器 ===========\n"
        "1:\n    PHP\n    Likes dollar signs\n"
        "2:\n    Python\n    Likes whitespace\n"
        "3:\n    Ruby\n    Likes blocks\n\n"
        "========== 使用引用来生成值 ===========\n2...1...0...\n"
        "========== yield from ===========\n123\n5\n\n4\n5\n6\n7\n8\n9\n"
    )
    assert run("yield.py")[0] == expected


def test_xrange_prints_the_original_output():
    expected = "1 3 5 7 9 \n1 -1 -3 -5 -7 -9 \n" + "".join(f"int({n})\n" for n in range(0, 101, 10))
    assert run("xrange.py")[0] == expected
    sys.path.insert(0, str(EXAMPLES))
    try:
        from xrange import xrange
    finally:
        sys.path.remove(str(EXAMPLES))
    with pytest.raises(ValueError, match=r"\+ve"):
        list(xrange(1, 5, -1))
    with pytest.raises(ValueError, match="-ve"):
        list(xrange(5, 1, 1))


def test_schedule_prints_the_original_output():
    expected = ["Task(1) 1", "Task(1) 2", "Task(2) 1", "Task(2) 2"]
    expected += [line for i in (3, 4, 5) for line in (f"Task(1) {i}", f"Task(2) {i}")]
    expected += [f"Task(2) {i}" for i in range(6, 11)]
    assert run("schedule.py")[0].splitlines() == expected
