"""Pool and Manager: real managers and workers in a child interpreter, stopped by SIGTERM."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from process_support import no_strays  # noqa: F401 - autouse: no orphans after any test

from pyswoole.process import MessageQueue, Pool, ftok

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


# Workers share one stdout pipe: each line goes out in one write(2), so lines never interleave.
PRELUDE = """
import os
def say(*words):
    os.write(1, (" ".join(map(str, words)) + "\\n").encode())
"""


class Running:
    """A script running in its own interpreter; ``line()`` reads its stdout with a deadline."""

    def __init__(self, source: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PRELUDE + source],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self._buffer = b""
        self.seen: list[str] = []
        self.stderr = ""

    def line(self, timeout: float = 5.0) -> str:
        while b"\n" not in self._buffer:
            if not self._selector.select(timeout):
                raise TimeoutError(f"no output in {timeout} s; seen so far: {self.seen}")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise EOFError(f"script ended: {self.proc.stderr.read().decode()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        self.seen.append(line.decode())
        return self.seen[-1]

    def until(self, predicate, timeout: float = 5.0) -> list[str]:
        """Read lines until ``predicate(all lines so far)`` holds."""
        deadline = time.monotonic() + timeout
        while not predicate(self.seen):
            self.line(max(0.01, deadline - time.monotonic()))
        return self.seen

    def stop(self, timeout: float = 10.0) -> tuple[int, str]:
        """SIGTERM the manager; return its exit status and remaining stdout."""
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=timeout)
        rest = (self._buffer + out).decode()
        self._buffer = b""
        self.seen.extend(rest.splitlines())
        self.stderr = err.decode()
        return self.proc.returncode, rest

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._selector.close()


@pytest.fixture
def running():
    scripts: list[Running] = []
    worker_pids: set[int] = set()

    def start(source: str) -> Running:
        script = Running(source)
        scripts.append(script)
        return script

    start.worker_pids = worker_pids
    yield start
    for script in scripts:
        script.kill()
    for pid in worker_pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not [pid for pid in pids if alive(pid)]


RESTARTING_POOL = """
import os, time
from pyswoole.process import Pool
pool = Pool(3)

@pool.on("worker_start")
def start(pool, worker_id):
    say("start", worker_id, os.getpid(), pool.get_process().pid)
    if worker_id == 0:
        time.sleep(0.1)          # returns: replaced with the same id
    elif worker_id == 1:
        time.sleep(0.1)
        raise RuntimeError("worker 1 crashes on purpose")
    else:
        time.sleep(60)           # killed with SIGKILL by the test, or stopped by SIGTERM

@pool.on("worker_stop")
def stop(pool, worker_id):
    say("stop", worker_id, os.getpid())

pool.max_wait_time = 30  # a loaded CI machine must not turn a slow worker_stop into SIGKILL
pool.start()
say("pool stopped")
"""


def starts_of(lines: list[str]) -> dict[int, list[int]]:
    """worker id -> pids of its successive processes, from the ``start <id> <pid> <pid>`` lines."""
    starts: dict[int, list[int]] = defaultdict(list)
    for line in lines:
        words = line.split()
        if words[0] == "start":
            assert words[2] == words[3]  # get_process() in a worker is the worker itself
            starts[int(words[1])].append(int(words[2]))
    return starts


def test_pool_restarts_returning_crashing_and_killed_workers_with_the_same_id(running):
    script = running(RESTARTING_POOL)
    starts = starts_of(script.until(lambda lines: 2 in starts_of(lines)))
    running.worker_pids.update(pid for pids in starts.values() for pid in pids)
    os.kill(starts[2][0], signal.SIGKILL)
    # worker 0 returns every 0.1 s; worker 1 crashes and is throttled (restarted after 1 s); worker 2 was killed.
    again = lambda lines: all(len(starts_of(lines)[i]) >= n for i, n in ((0, 3), (1, 2), (2, 2)))  # noqa: E731
    starts = starts_of(script.until(again, 8))
    running.worker_pids.update(pid for pids in starts.values() for pid in pids)
    for worker_id in (0, 1, 2):
        assert len(set(starts[worker_id])) == len(starts[worker_id]), "each start is a new process"
    code, _ = script.stop()
    assert code == 0, script.stderr
    assert script.seen[-1] == "pool stopped"
    assert "worker 1 crashes on purpose" in script.stderr
    stops = {int(line.split()[1]) for line in script.seen if line.startswith("stop")}
    assert stops == {0, 1, 2} or stops >= {0, 2}  # worker 1 may be between crash and restart
    wait_gone(running.worker_pids)


def test_sigterm_runs_worker_stop_in_every_worker(running):
    script = running(
        """
import os, time
from pyswoole.process import Pool
pool = Pool(4)
pool.on("worker_start", lambda pool, wid: (say("up", wid, os.getpid()), time.sleep(60)))
pool.on("worker_stop", lambda pool, wid: say("down", wid))
pool.max_wait_time = 30  # a loaded CI machine must not turn a slow worker_stop into SIGKILL
pool.start()
"""
    )
    lines = script.until(lambda lines: len(lines) == 4)
    running.worker_pids.update(int(line.split()[2]) for line in lines)
    code, _ = script.stop()
    assert code == 0, script.stderr
    downs = sorted(line for line in script.seen if line.startswith("down"))
    assert downs == [f"down {i}" for i in range(4)], (script.seen, script.stderr)
    wait_gone(running.worker_pids)


def test_sigusr1_reloads_every_worker_with_its_id(running):
    script = running(
        """
import os, time
from pyswoole.process import Pool
pool = Pool(2)
pool.on("worker_start", lambda pool, wid: (say("up", wid, os.getpid()), time.sleep(60)))
pool.max_wait_time = 30
pool.start()
"""
    )
    first = {line.split()[1]: int(line.split()[2]) for line in script.until(lambda lines: len(lines) == 2)}
    running.worker_pids.update(first.values())
    script.proc.send_signal(signal.SIGUSR1)
    lines = script.until(lambda lines: len(lines) == 4)
    second = {line.split()[1]: int(line.split()[2]) for line in lines[2:]}
    running.worker_pids.update(second.values())
    assert set(second) == {"0", "1"} and not set(second.values()) & set(first.values())
    wait_gone(first.values())
    assert script.stop()[0] == 0, script.stderr
    wait_gone(second.values())


def test_shutdown_from_a_worker_stops_the_whole_pool(running):
    script = running(
        """
import os, time
from pyswoole.process import Pool
pool = Pool(3)

@pool.on("worker_start")
def start(pool, worker_id):
    say("up", worker_id, os.getpid())
    if worker_id == 2:
        pool.shutdown()
    time.sleep(60)

pool.on("worker_stop", lambda pool, wid: say("down", wid))
pool.max_wait_time = 30
pool.start()
say("pool stopped")
"""
    )
    script.until(lambda lines: "pool stopped" in lines, 15)
    assert script.proc.wait(5) == 0
    ups = [line.split() for line in script.seen if line.startswith("up")]
    running.worker_pids.update(int(words[2]) for words in ups)
    downs = {line for line in script.seen if line.startswith("down")}
    assert downs == {f"down {words[1]}" for words in ups}, (script.seen, script.stderr)
    wait_gone(running.worker_pids)


def test_msgqueue_pool_workers_compete_for_messages(running, tmp_path):
    anchor = tmp_path / "pool-queue"
    anchor.write_bytes(b"")
    key = ftok(str(anchor), 1)
    script = running(
        f"""
import os
from pyswoole.process import Pool, IPC_MSGQUEUE
pool = Pool(3, IPC_MSGQUEUE, msgqueue_key={key})
pool.on("worker_start", lambda pool, wid: say("ready", wid, os.getpid()))
pool.on("message", lambda pool, data: say("got", pool.worker_id, data.decode()))
pool.max_wait_time = 30  # a loaded CI machine must not turn a slow worker_stop into SIGKILL
pool.start()
"""
    )
    queue = MessageQueue(key)
    try:
        lines = script.until(lambda lines: len(lines) == 3)
        running.worker_pids.update(int(line.split()[2]) for line in lines)
        for i in range(60):
            queue.push(f"job{i}")
        script.until(lambda lines: sum(line.startswith("got") for line in lines) == 60)
        got = [line.split() for line in script.seen if line.startswith("got")]
        assert sorted(words[2] for words in got) == sorted(f"job{i}" for i in range(60))
        assert {words[1] for words in got} <= {"0", "1", "2"}
        assert script.stop()[0] == 0, script.stderr
    finally:
        queue.free()
    wait_gone(running.worker_pids)


def test_unixsock_pool_delivers_to_the_worker_addressed(running):
    script = running(
        """
from pyswoole.process import Pool, IPC_UNIXSOCK
pool = Pool(3, IPC_UNIXSOCK)

@pool.on("worker_start")
def start(pool, worker_id):
    if worker_id == 0:
        for target in (1, 2, 2):
            pool.get_process(target).write(f"for {target}")

@pool.on("message")
def message(pool, data):
    say(pool.worker_id, data.decode())
pool.max_wait_time = 30  # a loaded CI machine must not turn a slow worker_stop into SIGKILL
pool.start()
"""
    )
    lines = script.until(lambda lines: len(lines) == 3)
    assert sorted(lines) == ["1 for 1", "2 for 2", "2 for 2"]
    assert script.stop()[0] == 0, script.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(struct.pack(">I", len(payload)) + payload)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    (length,) = struct.unpack(">I", reply[:4])
    assert length == len(reply) - 4
    return reply[4:]


def test_socket_pool_answers_framed_requests_and_survives_bad_clients(running):
    port = free_port()
    script = running(
        f"""
import os
from pyswoole.process import Pool, IPC_SOCKET
pool = Pool(2, IPC_SOCKET)
pool.request_timeout = 0.3
pool.package_max_length = 1024
pool.listen("127.0.0.1", {port}, 16)
pool.on("worker_start", lambda pool, wid: say("ready", wid, os.getpid()))

@pool.on("message")
def message(pool, data):
    if data == b"crash":
        raise RuntimeError("message callback fails on purpose")
    pool.write(b"worker %d: " % pool.worker_id)
    pool.write(data.upper())
pool.max_wait_time = 30  # a loaded CI machine must not turn a slow worker_stop into SIGKILL
pool.start()
"""
    )
    lines = script.until(lambda lines: len(lines) == 2)
    running.worker_pids.update(int(line.split()[2]) for line in lines)
    assert request(port, b"hello").split(b": ")[1] == b"HELLO"
    # A client that announces more than package_max_length is cut off.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(struct.pack(">I", 10_000) + b"x" * 100)
        assert conn.recv(100) == b""
    # Two slow clients that never finish their request hold both workers only until request_timeout.
    slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
    for conn in slow:
        conn.sendall(b"\x00\x00")
    started = time.monotonic()
    assert request(port, b"after slow").endswith(b"AFTER SLOW")
    assert time.monotonic() - started < 3
    for conn in slow:
        assert conn.recv(100) == b""
        conn.close()
    # A crashing message callback costs that worker a restart, not the service.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(struct.pack(">I", 5) + b"crash")
        assert conn.recv(100) == b""
    replies = {request(port, b"again %d" % i) for i in range(10)}
    assert {reply.split(b": ")[1] for reply in replies} == {b"AGAIN %d" % i for i in range(10)}
    code, _ = script.stop()
    assert code == 0
    assert "exceeds package_max_length" in script.stderr
    assert "message callback fails on purpose" in script.stderr


def test_async_callbacks_and_enable_coroutine(running):
    script = running(
        """
import asyncio
from pyswoole.process import Pool, IPC_UNIXSOCK
pool = Pool(2, IPC_UNIXSOCK, enable_coroutine=True)

@pool.on("worker_start")
def start(pool, worker_id):
    asyncio.get_running_loop()  # enable_coroutine: even plain callbacks run inside the loop
    if worker_id == 0:
        pool.get_process(1).write(b"ping")

@pool.on("message")
async def message(pool, data):
    await asyncio.sleep(0.01)
    say("async got", pool.worker_id, data.decode())
pool.max_wait_time = 30  # a loaded CI machine must not turn a slow worker_stop into SIGKILL
pool.start()
"""
    )
    assert script.line() == "async got 1 ping"
    assert script.stop()[0] == 0, script.stderr


def test_manager_runs_named_functions_and_restarts_them(running):
    script = running(
        """
import os, time
from pyswoole.process import Manager
manager = Manager()

def once(pool, worker_id):
    say("once", worker_id, os.getpid())
    time.sleep(0.2)

def forever(pool, worker_id):
    say("forever", worker_id, os.getpid())
    time.sleep(60)

async def coro(pool, worker_id):
    say("coro", worker_id, os.getpid())
    time.sleep(60)

manager.add(once, name="pyswoole-test: once")
manager.add_batch(2, forever, name="pyswoole-test: forever")
manager.add(coro, enable_coroutine=True)
manager.start()
"""
    )
    script.until(lambda lines: sum(line.startswith("once") for line in lines) >= 2 and len(lines) >= 5)
    by_kind = defaultdict(list)
    for line in script.seen:
        kind, worker_id, pid = line.split()
        by_kind[kind].append((int(worker_id), int(pid)))
        running.worker_pids.add(int(pid))
    assert {wid for wid, _ in by_kind["once"]} == {0}
    assert len({pid for _, pid in by_kind["once"]}) >= 2  # restarted
    assert sorted(wid for wid, _ in by_kind["forever"]) == [1, 2]
    assert [wid for wid, _ in by_kind["coro"]] == [3]
    titles = {}
    for wid, pid in by_kind["forever"]:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            titles[wid] = f.read().split(b"\0")[0].decode()
    assert titles == {1: "pyswoole-test: forever #0", 2: "pyswoole-test: forever #1"}
    killed = dict(by_kind["forever"])[1]
    os.kill(killed, signal.SIGKILL)  # a function that dies is restarted too, with its id
    lines = script.until(lambda lines: sum(line.startswith("forever 1 ") for line in lines) == 2)
    replacement = int([line for line in lines if line.startswith("forever 1 ")][-1].split()[2])
    running.worker_pids.add(replacement)
    assert replacement != killed
    assert script.stop()[0] == 0, script.stderr
    wait_gone(running.worker_pids)


def test_configuration_errors_are_clear():
    pool = Pool(1)
    with pytest.raises(ValueError, match="unknown Pool event"):
        pool.on("workerstart", print)
    with pytest.raises(ValueError, match="worker_start or a message"):
        pool.start()
    with pytest.raises(RuntimeError, match="IPC_SOCKET"):
        pool.listen("127.0.0.1", 0)
    with pytest.raises(ValueError, match="listen"):
        socket_pool = Pool(1, Pool.IPC_SOCKET)
        socket_pool.on("message", print)
        socket_pool.start()
    with pytest.raises(ValueError):
        Pool(0)


def test_socket_pool_on_a_unix_socket(running, tmp_path):
    path = tmp_path / "pool.sock"
    script = running(
        f"""
from pyswoole.process import Pool, IPC_SOCKET
pool = Pool(2, IPC_SOCKET)
pool.listen("unix:{path}")
pool.on("worker_start", lambda pool, wid: say("ready", wid))
pool.on("message", lambda pool, data: pool.write(b"unix " + data))
pool.max_wait_time = 30
pool.start()
"""
    )
    script.until(lambda lines: len(lines) == 2)
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5)
        conn.connect(str(path))
        conn.sendall(struct.pack(">I", 4) + b"ping")
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    assert reply == struct.pack(">I", 9) + b"unix ping"
    assert script.stop()[0] == 0, script.stderr


def test_unixsock_worker_without_message_callback_reads_its_own_pipe(running):
    script = running(
        """
from pyswoole.process import Pool, IPC_UNIXSOCK
pool = Pool(2, IPC_UNIXSOCK)

@pool.on("worker_start")
def start(pool, worker_id):
    me = pool.get_process()
    if worker_id == 0:
        pool.get_process(1).write(b"hello 1")
        say("0 heard", me.read().decode())
    else:
        say("1 heard", me.read().decode())
        pool.get_process(0).write(b"hello 0")
    me.read()  # until the pool stops

pool.max_wait_time = 30
pool.start()
"""
    )
    assert sorted(script.until(lambda lines: len(lines) == 2)) == ["0 heard hello 0", "1 heard hello 1"]
    assert script.stop()[0] == 0, script.stderr


def test_msgqueue_pool_without_a_key_makes_its_queue_and_removes_it(running):
    script = running(
        """
from pyswoole.process import Pool, IPC_MSGQUEUE, MessageQueue
pool = Pool(2, IPC_MSGQUEUE)

@pool.on("worker_start")
def start(pool, worker_id):
    say("key", worker_id, pool.msgqueue_key)
    if worker_id == 0:
        MessageQueue(pool.msgqueue_key).push(b"to whoever is idle")

pool.on("message", lambda pool, data: say("got", data.decode()))
pool.max_wait_time = 30
pool.start()
"""
    )
    lines = script.until(lambda lines: len(lines) == 3)
    keys = {int(line.split()[2]) for line in lines if line.startswith("key")}
    assert len(keys) == 1
    (key,) = keys
    assert "got to whoever is idle" in lines
    ipcs = subprocess.run(["ipcs", "-q"], capture_output=True, text=True, timeout=5, check=True).stdout
    assert f"0x{key & 0xFFFFFFFF:08x}" in ipcs
    assert script.stop()[0] == 0, script.stderr
    ipcs = subprocess.run(["ipcs", "-q"], capture_output=True, text=True, timeout=5, check=True).stdout
    assert f"0x{key & 0xFFFFFFFF:08x}" not in ipcs
