"""Process.signal / wait / alarm / daemon, each in a fresh interpreter (signal handlers are per process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from process_support import no_strays  # noqa: F401 - autouse: no orphans after any test

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def run_script(source: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=timeout, env=ENV
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


SIGCHLD_REAPER = """
import json, os, signal, sys, time
from pyswoole.process import Process, wait_signals
reaped = []

def on_child(signo):
    while (status := Process.wait(False)) is not None:
        reaped.append(status)
    if len(reaped) == len(children):
        Process.signal(signal.SIGCHLD, None)

def exits(delay, code):
    def target(p):
        time.sleep(delay)
        p.exit(code)
    return target

def sleeps(p):
    time.sleep(30)

children = {}
Process.signal(signal.SIGCHLD, on_child)
for kind, code in (("exit", 0), ("exit", 3), ("exit", 0), ("kill", 0), ("kill", 0)):
    target = exits(0.05 * (len(children) + 1), code) if kind == "exit" else sleeps
    children[Process(target, pipe_type=Process.PIPE_NONE).start()] = (kind, code)
for pid, (kind, _) in children.items():
    if kind == "kill":
        Process.kill(pid, signal.SIGKILL)
print("end", flush=True)
USE_LOOP
print(json.dumps({"children": children, "reaped": reaped}))
"""


@pytest.mark.parametrize("inside_loop", [False, True], ids=["wait_signals", "inside_asyncio"])
def test_sigchld_listener_reaps_every_child_with_code_and_signal(inside_loop):
    """The loop holds only the SIGCHLD listener: it stays up until the handler removes itself."""
    use_loop = (
        "import asyncio\nfrom pyswoole.process import signals_drained\nasyncio.run(signals_drained())"
        if inside_loop
        else "wait_signals()"
    )
    result = run_script(SIGCHLD_REAPER.replace("USE_LOOP", use_loop))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "end"
    report = json.loads(lines[1])
    children = {int(pid): case for pid, case in report["children"].items()}
    reaped = {status["pid"]: status for status in report["reaped"]}
    assert set(reaped) == set(children)
    for pid, (kind, code) in children.items():
        expected = {"pid": pid, "code": code, "signal": 0}
        if kind == "kill":
            expected = {"pid": pid, "code": 0, "signal": signal.SIGKILL}
        assert reaped[pid] == expected


def test_signal_outside_a_loop_runs_between_statements_and_can_be_removed():
    script = """
import os, signal, time
from pyswoole.process import Process
hits = []
Process.signal(signal.SIGUSR1, hits.append)
os.kill(os.getpid(), signal.SIGUSR1)
os.kill(os.getpid(), signal.SIGUSR1)
print(hits == [signal.SIGUSR1, signal.SIGUSR1], flush=True)
def broken(signo):
    raise RuntimeError("handler failure is logged, not raised")
Process.signal(signal.SIGUSR2, broken)
os.kill(os.getpid(), signal.SIGUSR2)
print("survived", flush=True)
Process.signal(signal.SIGINT, hits.append)
Process.signal(signal.SIGINT, None)  # Python's own SIGINT handler is back
assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
Process.signal(signal.SIGUSR1, None)
os.kill(os.getpid(), signal.SIGUSR1)  # default action again: terminate
time.sleep(5)
print("not reached")
"""
    result = run_script(script)
    assert result.stdout.splitlines() == ["True", "survived"]
    assert "handler failure is logged" in result.stderr
    assert result.returncode == -signal.SIGUSR1


def test_signal_inside_uvloop_calls_async_callbacks_on_the_loop():
    script = """
import asyncio, os, signal, uvloop
from pyswoole.process import Process, signals_drained
seen = []
async def on_usr1(signo):
    await asyncio.sleep(0)
    seen.append((signo, asyncio.get_running_loop() is loop))
    Process.signal(signal.SIGUSR1, None)
async def main():
    global loop
    loop = asyncio.get_running_loop()
    Process.signal(signal.SIGUSR1, on_usr1)
    loop.call_later(0.05, os.kill, os.getpid(), signal.SIGUSR1)
    await asyncio.wait_for(signals_drained(), 5)
    print(seen == [(signal.SIGUSR1, True)])
uvloop.run(main())
"""
    result = run_script(script)
    assert result.stdout.strip() == "True", result.stderr


def test_alarm_repeats_until_cleared():
    script = """
import signal, time
from pyswoole.process import Process, wait_signals
ticks = []
def on_alarm(signo):
    ticks.append(time.monotonic())
    if len(ticks) == 5:
        Process.alarm(-1)
        Process.signal(signal.SIGALRM, None)
Process.signal(signal.SIGALRM, on_alarm)
Process.alarm(20_000)
start = time.monotonic()
wait_signals()
time.sleep(0.1)
print(len(ticks), round(time.monotonic() - start, 2))
"""
    result = run_script(script)
    count, elapsed = result.stdout.split()
    assert count == "5", result.stderr
    assert 0.09 <= float(elapsed) < 2


def test_child_runs_its_loop_while_it_holds_listeners():
    """A child that registers a listener keeps running until the listener is removed."""
    script = """
import os, signal, time
from pyswoole.process import Process
def child(p):
    def on_usr1(signo):
        p.write(b"got usr1")
        Process.signal(signal.SIGUSR1, None)
    Process.signal(signal.SIGUSR1, on_usr1)
    p.write(b"listening")
p = Process(child)
pid = p.start()
p.set_timeout(5)
print(p.read().decode(), flush=True)
time.sleep(0.1)
print(Process.kill(pid, 0), flush=True)
Process.kill(pid, signal.SIGUSR1)
print(p.read().decode(), Process.wait(), flush=True)
"""
    result = run_script(script)
    lines = result.stdout.splitlines()
    assert lines[:2] == ["listening", "True"], result.stderr
    assert lines[2].startswith("got usr1 {'pid': ") and lines[2].endswith("'code': 0, 'signal': 0}")


def test_daemon_detaches_into_a_new_session_at_root_without_tty(tmp_path):
    report = tmp_path / "daemon.json"
    script = f"""
import json, os, time
from pyswoole.process import Process
launcher = os.getpid()
Process.daemon()
fds = {{fd: os.readlink(f"/proc/self/fd/{{fd}}") for fd in (0, 1, 2)}}
try:
    os.close(os.open("/dev/tty", os.O_RDWR))
    tty = True
except OSError:
    tty = False
info = {{"pid": os.getpid(), "launcher": launcher, "sid": os.getsid(0), "cwd": os.getcwd(),
        "fds": fds, "tty": tty}}
with open({str(report)!r} + ".tmp", "w") as f:
    json.dump(info, f)
os.rename({str(report)!r} + ".tmp", {str(report)!r})
print("stdout goes nowhere")
time.sleep(30)
"""
    launcher = subprocess.Popen(
        [sys.executable, "-c", script], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    info = None
    try:
        out, err = launcher.communicate(timeout=10)
        assert launcher.returncode == 0, err
        assert out == ""  # the launcher returned at once; the daemon's print went to /dev/null
        deadline = time.monotonic() + 10
        while not report.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        info = json.loads(report.read_text())
        assert info["pid"] != info["launcher"]
        assert info["sid"] == info["pid"]
        assert info["cwd"] == "/"
        assert info["fds"] == {"0": "/dev/null", "1": "/dev/null", "2": "/dev/null"}
        assert info["tty"] is False
        assert pid_alive(info["pid"])
    finally:
        if info is not None:
            os.kill(info["pid"], signal.SIGKILL)
            deadline = time.monotonic() + 5
            while pid_alive(info["pid"]) and time.monotonic() < deadline:
                time.sleep(0.02)


def test_alarm_types_count_cpu_time_and_bad_types_are_refused():
    """Type 1 raises SIGVTALRM (user CPU time), type 2 SIGPROF (user and system time)."""
    script = """
import signal, time
from pyswoole.process import Process
ticks = {signal.SIGVTALRM: 0, signal.SIGPROF: 0}
def tick(signo):
    ticks[signo] += 1
for kind, signo in ((1, signal.SIGVTALRM), (2, signal.SIGPROF)):
    Process.signal(signo, tick)
    Process.alarm(10_000, kind)
    deadline = time.monotonic() + 10
    while ticks[signo] < 3 and time.monotonic() < deadline:
        sum(range(1000))  # burn CPU: these timers count CPU time, not wall time
    Process.alarm(-1, kind)
    Process.signal(signo, None)
try:
    Process.alarm(1000, 3)
except ValueError:
    refused = True
print(ticks[signal.SIGVTALRM] >= 3, ticks[signal.SIGPROF] >= 3, refused)
"""
    result = run_script(script)
    assert result.stdout.split() == ["True", "True", "True"], result.stderr


def test_daemon_nochdir_noclose_keeps_cwd_and_stdio(tmp_path):
    script = """
import os
from pyswoole.process import Process
launcher = os.getpid()
Process.daemon(nochdir=True, noclose=True)
print(os.getpid() != launcher, os.getsid(0) == os.getpid(), os.getcwd(), flush=True)
"""
    # The daemon keeps the launcher's stdout: communicate() returns once the daemon has exited too.
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", str(tmp_path)]
