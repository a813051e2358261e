"""System V message queues: competing consumers, non-blocking mode, stats, freeing (checked with ipcs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from process_support import no_strays  # noqa: F401 - autouse: no orphans after any test

from pyswoole.process import MessageQueue, Process, ftok

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.fixture
def queue_key(tmp_path):
    """A key of our own (ftok of a fresh file); the queue behind it is removed afterwards."""
    anchor = tmp_path / "queue-anchor"
    anchor.write_bytes(b"")
    key = ftok(str(anchor), "q")
    yield key
    MessageQueue(key).free()


def ipcs_queue_keys() -> set[int]:
    output = subprocess.run(["ipcs", "-q"], capture_output=True, text=True, timeout=5, check=True).stdout
    return {int(line.split()[0], 16) for line in output.splitlines() if line.startswith("0x")}


def test_five_competing_consumers_take_each_message_exactly_once(queue_key):
    consumers = []

    def consume(p: Process) -> None:
        taken = []
        while (message := p.pop()) is not None:
            taken.append(message.decode())
        p.write(",".join(taken))

    try:
        for _ in range(5):
            p = Process(consume)
            p.use_queue(queue_key)
            p.start()
            consumers.append(p)
        assert queue_key in ipcs_queue_keys()
        producer = consumers[-1]
        messages = [f"m{i}" for i in range(500)]
        for message in messages:
            assert producer.push(message)
        deadline = time.monotonic() + 5
        while producer.stat_queue()["queue_num"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert producer.stat_queue() == {"queue_num": 0, "queue_bytes": 0}
        producer.free_queue()  # wakes every consumer blocked in pop() with None
        taken = []
        for p in consumers:
            p.set_timeout(5)
            report = p.read(65536).decode()
            taken.extend(report.split(",") if report else [])
        assert sorted(taken) == sorted(messages)
        assert queue_key not in ipcs_queue_keys()
        for p in consumers:
            assert os.waitpid(p.pid, 0)[1] == 0
    finally:
        for p in consumers:
            try:
                os.kill(p.pid, signal.SIGKILL)
                os.waitpid(p.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def test_stat_nowait_and_message_size(queue_key):
    p = Process(lambda p: None)
    p.use_queue(queue_key, Process.IPC_QUEUE_COMPETE | Process.IPC_NOWAIT)
    assert p.pop() is None
    assert p.push(b"abc") and p.push("de")
    assert p.stat_queue() == {"queue_num": 2, "queue_bytes": 5}
    assert p.pop() == b"abc"
    assert p.pop() == b"de"
    with pytest.raises(ValueError, match="exceeds"):
        p.push(b"z" * 9000)
    p.free_queue()
    with pytest.raises(RuntimeError, match="use_queue"):
        p.pop()


def test_full_queue_with_nowait_push_returns_false(queue_key):
    queue = MessageQueue(queue_key)
    queue.set_capacity(64)
    assert queue.push(b"x" * 64, block=False)
    assert not queue.push(b"y", block=False)
    queue.free()


def test_default_key_is_ftok_of_the_script_even_after_chdir(tmp_path):
    script = tmp_path / "producer.py"
    script.write_text(
        "import os\nfrom pyswoole.process import Process\n"
        "os.chdir('/')  # like a daemon: the key must still name this script\n"
        "p = Process(lambda p: None)\np.use_queue()\np.push(b'from the default key')\n"
    )
    key = ftok(str(script), 1)
    try:
        result = subprocess.run(
            [sys.executable, script.name], cwd=tmp_path, capture_output=True, text=True, timeout=20, env=ENV
        )
        assert result.returncode == 0, result.stderr
        assert MessageQueue(key).pop(block=False) == b"from the default key"
    finally:
        MessageQueue(key).free()


def test_use_queue_rejects_unknown_modes():
    with pytest.raises(ValueError, match="IPC_QUEUE_COMPETE"):
        Process(lambda p: None).use_queue(mode=1)


def test_pop_survives_signals_while_blocked(queue_key):
    """A signal that interrupts a blocking pop runs its handler, then the pop goes on waiting."""
    script = f"""
import signal, sys
from pyswoole.process import MessageQueue
hits = []
signal.signal(signal.SIGUSR1, lambda s, f: hits.append(s))
queue = MessageQueue({queue_key})
print("ready", flush=True)
message = queue.pop()
print(message.decode(), len(hits), flush=True)
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert child.stdout.readline() == "ready\n"
        time.sleep(0.1)
        child.send_signal(signal.SIGUSR1)
        time.sleep(0.1)
        MessageQueue(queue_key).push(b"after-signal")
        assert child.stdout.readline() == "after-signal 1\n"
        assert child.wait(5) == 0
    finally:
        child.kill()
        child.wait()
