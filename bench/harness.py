"""Benchmark harness: run servers side by side against real load generators, fairly.

The rules every bench script follows through this module:

- A server runs pinned to CPU 0 (``taskset -c 0``), the load generator to CPU 1, in the same run
  as its peers (``Contender``: a name, a command, a port, an optional ready check).
- Contenders alternate rep by rep (A B C A B C ...), each rep on a freshly started server, and the
  results are medians and ratios: the VM's speed drifts by tens of percent over minutes, so a
  single absolute time means little.
- Everything started is killed, always: servers run in their own session and are stopped with
  their whole process tree (also on an exception, Ctrl-C or SIGTERM of the bench script).
- Each bench script rewrites only its own section of ``bench/RESULTS.md`` (between
  ``<!-- bench:KEY -->`` and ``<!-- /bench:KEY -->``), with the machine, versions and parameters.

Load generators: ``echo_client`` (bench/echo_client.c, built here with gcc -O2 into bench/out/)
for TCP and WebSocket echo and idle connections, ``wrk`` for HTTP, ``redis-benchmark`` for RESP.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import importlib.metadata
import json
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
LOG_DIR = OUT_DIR / "logs"
RESULTS_PATH = BENCH_DIR / "RESULTS.md"
ECHO_CLIENT_SOURCE = BENCH_DIR / "echo_client.c"
ECHO_CLIENT = OUT_DIR / "echo_client"

_ALLOWED_CPUS = sorted(os.sched_getaffinity(0))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVER_CPU = _ALLOWED_CPUS[0]
# With a single CPU there is nothing to separate: both share it (figures then mean little).
LOAD_CPU = _ALLOWED_CPUS[1] if len(_ALLOWED_CPUS) > 1 else _ALLOWED_CPUS[0]

Sample = dict[str, float]

# Scheduling priority (nice value) of servers and load generators; bench_session(nice=...) sets it.
niceness = 0
# Where servers import pyswoole from: the working tree, or an exported commit (bench_session(revision=...)).
pyswoole_source = REPO_DIR


def pinned(cpu: int, command: Sequence[str]) -> list[str]:
    """``command`` run on one CPU (and at the session's nice value)."""
    prefix = ["taskset", "-c", str(cpu)]
    if niceness:
        prefix += ["nice", "-n", str(niceness)]
    return [*prefix, *command]


class BenchError(RuntimeError):
    """A benchmark could not be run as specified (server did not start, load generator failed...)."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Building the C load generator


def build_echo_client(force: bool = False) -> Path:
    """Compile bench/echo_client.c with gcc -O2 into bench/out/ (when missing or out of date)."""
    if (
        not force
        and ECHO_CLIENT.exists()
        and ECHO_CLIENT.stat().st_mtime >= ECHO_CLIENT_SOURCE.stat().st_mtime
    ):
        return ECHO_CLIENT
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise BenchError("gcc is needed to build bench/echo_client.c (apt-get install gcc)")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    temporary = ECHO_CLIENT.with_name(f"echo_client.{os.getpid()}.tmp")  # concurrent builds: no clash
    result = subprocess.run(
        [compiler, "-O2", "-Wall", "-Wextra", "-o", str(temporary), str(ECHO_CLIENT_SOURCE)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"building echo_client failed:\n{result.stderr}")
    temporary.replace(ECHO_CLIENT)
    return ECHO_CLIENT


# --------------------------------------------------------------------------------------------
# Processes: trees, memory


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    start_time: int  # clock ticks after boot: tells a pid apart from a later reuse of it
    cmdline: str
    rss_kib: int
    peak_rss_kib: int
    cpu_seconds: float  # CPU time consumed so far, all threads


def process_info(pid: int) -> ProcessInfo | None:
    """Read /proc/<pid>; None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    memory = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE))
    return ProcessInfo(
        pid=pid,
        ppid=int(fields[1]),
        start_time=int(fields[19]),
        cmdline=cmdline,
        rss_kib=int(memory.get("VmRSS", 0)),
        peak_rss_kib=int(memory.get("VmHWM", 0)),
        cpu_seconds=_cpu_seconds(pid, fields),
    )


def _cpu_seconds(pid: int, stat_fields: list[str]) -> float:
    """CPU time of a process: the nanosecond run times of its threads (/proc/PID/task/*/schedstat),
    or utime + stime from /proc/PID/stat (10 ms ticks) where schedstat is missing."""
    try:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        return (int(stat_fields[11]) + int(stat_fields[12])) / CLOCK_TICKS


def process_tree(root_pid: int) -> list[ProcessInfo]:
    """The root process and all its descendants (root first); empty when the root is gone."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    tree, pending = [], [root_pid]
    while pending:
        info = process_info(pending.pop())
        if info is not None:
            tree.append(info)
            pending.extend(children.get(info.pid, ()))
    return tree


def worker_processes(tree: Sequence[ProcessInfo]) -> list[ProcessInfo]:
    """The processes that serve connections: those titled "worker", else the leaves of the tree."""
    titled = [p for p in tree if re.search(r"\bworker\b", p.cmdline)]
    if titled:
        return titled
    parents = {p.ppid for p in tree}
    return [p for p in tree if p.pid not in parents]


def raise_nofile_limit() -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --------------------------------------------------------------------------------------------
# Servers


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def answers(request: bytes, reply_prefix: bytes, timeout: float = 1.0) -> Callable[[Contender], bool]:
    """A ready check for Contender: the server answers ``request`` with a reply starting with
    ``reply_prefix``, e.g. ``answers(b"PING\\r\\n", b"+PONG")`` or ``answers(http_get("/"), b"HTTP/1.1 200")``.
    """

    def check(contender: Contender) -> bool:
        try:
            with socket.create_connection((contender.host, contender.port), timeout=timeout) as conn:
                conn.sendall(request)
                reply = b""
                while len(reply) < len(reply_prefix):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
        except OSError:
            return False
        return reply.startswith(reply_prefix)

    return check


def http_get(path: str = "/", host: str = "127.0.0.1") -> bytes:
    """A minimal HTTP/1.1 GET request that asks the server to close the connection afterwards."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


@dataclass
class Contender:
    """One server in a comparison: started with ``command`` (which must listen on ``port``).

    ``ready`` is an optional extra check, polled after the port accepts connections until it
    returns True (e.g. an HTTP request that must answer 200). ``env`` adds environment variables.
    """

    name: str
    command: Sequence[str]
    port: int
    host: str = "127.0.0.1"
    ready: Callable[[Contender], bool] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    start_timeout: float = 30.0

    def start(self) -> RunningServer:
        return RunningServer(self)


_running: set[RunningServer] = set()


class RunningServer:
    """A contender's server process, pinned to SERVER_CPU in its own session.

    Use as a context manager: the server and every process it forked are stopped on exit,
    whatever happened. Output goes to bench/out/logs/<name>.log.
    """

    def __init__(self, contender: Contender):
        self.contender = contender
        if port_accepts(contender.host, contender.port):
            raise BenchError(
                f"port {contender.port} is already in use: refusing to measure someone else's server"
            )
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', contender.name)}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        try:
            self.process = subprocess.Popen(
                pinned(SERVER_CPU, contender.command),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=_server_environment(contender.env),
                cwd=pyswoole_source,
                start_new_session=True,
            )
        except BaseException:
            self._log.close()
            raise
        self.pid = self.process.pid
        self._known: dict[int, int] = {}  # pid -> start time, of every process seen in the tree
        _running.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        c = self.contender
        deadline = time.monotonic() + c.start_timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if port_accepts(c.host, c.port, timeout=0.2) and (c.ready is None or c.ready(c)):
                self.tree()  # remember the processes it forked
                return
            time.sleep(0.05)
        raise BenchError(f"{c.name} did not become ready within {c.start_timeout:.0f} s; see {self.log_path}")

    def check_alive(self) -> None:
        """Raise BenchError (with the end of the server's log) if the server has exited."""
        code = self.process.poll()
        if code is not None:
            raise BenchError(f"{self.contender.name} exited with code {code}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if not self._log.closed:
            self._log.flush()
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def tree(self) -> list[ProcessInfo]:
        """The server's live process tree; every process seen is remembered for stop()."""
        tree = process_tree(self.pid)
        for info in tree:
            self._known[info.pid] = info.start_time
        return tree

    def rss_kib(self) -> int:
        """Resident memory of the whole process tree, in KiB."""
        return sum(p.rss_kib for p in self.tree())

    def workers(self) -> list[ProcessInfo]:
        return worker_processes(self.tree())

    def cpu_seconds(self) -> float:
        """CPU time consumed so far by the live processes of the tree, in seconds."""
        return sum(p.cpu_seconds for p in self.tree())

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the server's session and tree, SIGKILL whatever is left after ``grace`` seconds."""
        if self not in _running:
            return
        try:
            self.tree()
            self._signal_all(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            self._wait_gone(grace)
            self._signal_all(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
            if not self._wait_gone(grace):
                log(f"{self.contender.name}: processes {self._survivors()} survived SIGKILL")
        finally:
            _running.discard(self)
            self._log.close()

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._survivors():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def _survivors(self) -> list[int]:
        alive = []
        for pid, start_time in self._known.items():
            info = process_info(pid)
            if info is not None and info.start_time == start_time and not _is_zombie(pid):
                alive.append(pid)
        return alive

    def _signal_all(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)
        for pid in self._survivors():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def _server_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a server: this one, the pyswoole measured first on the path, ``extra``."""
    path = os.environ.get("PYTHONPATH")
    source = str(pyswoole_source)
    return {**os.environ, "PYTHONPATH": f"{source}{os.pathsep}{path}" if path else source, **extra}


def _git(*args: str) -> str:
    result = subprocess.run(["git", "-C", str(REPO_DIR), *args], capture_output=True, text=True, check=False)
    return result.stdout.strip()


def export_revision(revision: str) -> Path:
    """A copy of the repository at ``revision`` (git archive) with its C extensions built in place.

    Benchmarks then measure committed code, not whatever is being edited in the working tree.
    """
    commit = _git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if not commit:
        raise BenchError(f"unknown git revision {revision!r}")
    target = OUT_DIR / f"src-{commit[:12]}"
    if target.exists():
        return target
    staging = OUT_DIR / f"src-{commit[:12]}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO_DIR), "archive", commit], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(staging)], input=archive.stdout, check=True)
    if (staging / "setup.py").exists():
        build = subprocess.run(
            [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
            cwd=staging,
            capture_output=True,
            text=True,
            check=False,
        )
        if build.returncode != 0:
            raise BenchError(f"building the C extensions of {commit[:12]} failed:\n{build.stderr[-2000:]}")
    staging.rename(target)
    return target


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] in (b"Z", b"X")


def stop_all_servers() -> None:
    for server in list(_running):
        server.stop()


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def install_cleanup() -> dict[int, Any]:
    """Make SIGTERM/SIGHUP unwind the stack (so every ``with`` block stops its server).

    Returns the previous handlers (for signal.signal)."""
    return {sig: signal.signal(sig, _exit_on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}


atexit.register(stop_all_servers)


# --------------------------------------------------------------------------------------------
# Load generators (pinned to LOAD_CPU)


def run_load(command: Sequence[str], timeout: float) -> str:
    """Run a load generator pinned to LOAD_CPU; return its stdout (BenchError on failure)."""
    try:
        result = subprocess.run(
            pinned(LOAD_CPU, command),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{command[0]} did not finish within {timeout:.0f} s") from exc
    if result.returncode != 0 and not result.stdout.strip():
        raise BenchError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def echo_load(
    target: int | RunningServer,
    *,
    host: str = "127.0.0.1",
    mode: str = "length",
    connections: int = 50,
    payload: int = 64,
    duration: float = 5.0,
    warmup: float = 1.0,
    path: str = "/",
) -> dict[str, Any]:
    """Run echo_client against an echo server; returns its JSON result (msg_per_s, errors, p50_us...).

    ``target`` is a port, or a RunningServer: then the server's CPU time over the run is measured
    too, adding ``server_us_per_msg`` (CPU cost per round trip, a figure that other work on the
    machine disturbs far less than the rate) and ``server_cpu_share`` (the share of one CPU its
    processes used; the kernel's softirq network processing is not counted).
    """
    server, port = _target(target)
    if server is not None:
        host = server.contender.host
    client = build_echo_client()
    command = [str(client), "--mode", mode, "--host", host, "--port", str(port), "--path", path]
    command += ["-c", str(connections), "-s", str(payload), "-d", str(duration), "-w", str(warmup)]
    cpu_before = server.cpu_seconds() if server else 0.0
    output = run_load(command, timeout=duration + warmup + 60)
    result = json.loads(output.strip().splitlines()[-1])
    if "error" in result:
        raise BenchError(f"echo_client: {result['error']} ({result})")
    if server is not None:
        cpu = server.cpu_seconds() - cpu_before
        _add_server_cost(result, cpu, "msg", result["total_msgs"], result["total_seconds"])
    return result


def _target(target: int | RunningServer) -> tuple[RunningServer | None, int]:
    if isinstance(target, RunningServer):
        return target, target.contender.port
    return None, target


def _add_server_cost(
    result: dict[str, Any], cpu_seconds: float, unit: str, units: float, seconds: float
) -> None:
    """Add server_cpu_s, server_us_per_<unit> and server_cpu_share to a load generator's result."""
    result["server_cpu_s"] = cpu_seconds
    result[f"server_us_per_{unit}"] = cpu_seconds / units * 1e6 if units else float("nan")
    result["server_cpu_share"] = cpu_seconds / seconds if seconds else float("nan")


def broadcast_load(
    port: int,
    *,
    host: str = "127.0.0.1",
    connections: int = 1000,
    rounds: int = 10,
    payload: int = 64,
    interval: float = 0.2,
    path: str = "/",
    setup_timeout: float = 60.0,
    round_timeout: float = 10.0,
) -> dict[str, Any]:
    """Time one WebSocket message reaching every connection (echo_client --broadcast).

    The server must send one data frame to every connection when any of them sends a message
    (a chat room). Returns median_ms/max_ms (send to last delivery), first_median_ms, errors.
    """
    client = build_echo_client()
    command = [str(client), "--mode", "ws", "--host", host, "--port", str(port), "--path", path]
    command += ["-c", str(connections), "-s", str(payload), "--broadcast", str(rounds)]
    command += ["--interval", str(interval), "--setup-timeout", str(setup_timeout)]
    command += ["--round-timeout", str(round_timeout)]
    output = run_load(command, timeout=setup_timeout + rounds * (interval + round_timeout) + 10)
    result = json.loads(output.strip().splitlines()[-1])
    if "error" in result or result["rounds_completed"] < rounds:
        raise BenchError(f"echo_client --broadcast: {result}")
    return result


class IdleConnections:
    """Hold ``connections`` set-up connections open (echo_client --hold) while the block runs.

    In the load modes every connection first completes one checked round trip, so the server
    has accepted it and built its per-connection state before ``ready`` is reported.
    """

    def __init__(
        self,
        port: int,
        connections: int,
        *,
        host: str = "127.0.0.1",
        mode: str = "length",
        payload: int = 64,
        path: str = "/",
        timeout: float = 60.0,
    ):
        client = build_echo_client()
        command = [str(client), "--mode", mode, "--host", host, "--port", str(port), "--path", path]
        command += ["-c", str(connections), "-s", str(payload), "--hold", "--setup-timeout", str(timeout)]
        self.command = pinned(LOAD_CPU, command)
        self.timeout = timeout
        self.ready: dict[str, Any] = {}
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> IdleConnections:
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            line = _readline(self.process, self.timeout + 10)
            self.ready = json.loads(line)
            if self.ready.get("event") != "ready":
                raise BenchError(f"echo_client --hold: {self.ready}")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(OSError):
            process.stdin.close()  # type: ignore[union-attr]
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        finally:
            for stream in (process.stdout, process.stderr):
                stream.close()  # type: ignore[union-attr]


def _readline(process: subprocess.Popen[str], timeout: float) -> str:
    """Read one line of a child's stdout within ``timeout`` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        if not selector.select(timeout):
            raise BenchError(f"no output within {timeout:.0f} s from {' '.join(map(str, process.args))}")
    line = process.stdout.readline()  # type: ignore[union-attr]
    if not line:
        raise BenchError(f"load generator exited: {process.stderr.read()}")  # type: ignore[union-attr]
    return line


WRK_SCRIPT = """\
-- Written by bench/harness.py: optional pipelining (depth after --) and a JSON summary.
local depth = 1
local req
init = function(args)
  depth = tonumber(args[1] or "1")
  local r = {}
  for i = 1, depth do r[i] = wrk.format() end
  req = table.concat(r)
end
request = function() return req end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"socket_errors":%d,"status_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect + e.read + e.write + e.timeout,
    e.status, latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_load(
    url: str,
    *,
    connections: int = 50,
    duration: float = 5.0,
    threads: int = 1,
    pipeline: int = 1,
    warmup: float = 1.0,
    server: RunningServer | None = None,
) -> dict[str, Any]:
    """Run wrk (after a warm-up run of ``warmup`` seconds); returns requests_per_s, errors, p50_us, p99_us.

    The latency percentiles are None when wrk's histogram is inconsistent (it is with pipelining).
    With ``server``, its CPU cost is added: ``server_us_per_request``, ``server_cpu_share``.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed (bench/setup.sh installs it)")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    script = OUT_DIR / "wrk_report.lua"
    if not script.exists() or script.read_text() != WRK_SCRIPT:
        temporary = script.with_name(f"wrk_report.{os.getpid()}.tmp")
        temporary.write_text(WRK_SCRIPT)
        temporary.replace(script)

    def run(seconds: float) -> dict[str, Any]:
        command = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s"]
        command += ["--latency", "-s", str(script), url, "--", str(pipeline)]
        lines = [
            line for line in run_load(command, timeout=seconds + 60).splitlines() if line.startswith("{")
        ]
        if not lines:
            raise BenchError(f"wrk printed no summary for {url}")
        return json.loads(lines[-1])

    if warmup > 0:
        run(warmup)
    cpu_before = server.cpu_seconds() if server else 0.0
    result = run(duration)
    seconds = result["duration_us"] / 1e6
    if server is not None:
        _add_server_cost(result, server.cpu_seconds() - cpu_before, "request", result["requests"], seconds)
    result["seconds"] = seconds
    result["requests_per_s"] = result["requests"] / seconds if seconds else 0.0
    result["errors"] = result["socket_errors"] + result["status_errors"]
    if not 0 < result["p50_us"] <= result["p99_us"]:
        # wrk's latency histogram is wrong with pipelining (its 99th percentile reads 0)
        result["p50_us"] = result["p99_us"] = None
    return result


def redis_benchmark_load(
    port: int,
    *,
    host: str = "127.0.0.1",
    tests: str = "ping,set,get,incr",
    connections: int = 50,
    requests: int = 200000,
    pipeline: int = 1,
) -> dict[str, float]:
    """Run redis-benchmark --csv; returns requests/s per test name (e.g. {"SET": 81234.0, ...})."""
    tool = shutil.which("redis-benchmark")
    if tool is None:
        raise BenchError("redis-benchmark is not installed (bench/setup.sh installs redis-tools)")
    command = [tool, "-h", host, "-p", str(port), "-t", tests, "-c", str(connections), "-n", str(requests)]
    command += ["-P", str(pipeline), "--csv", "-q"]
    rates = {}
    for line in run_load(command, timeout=600).splitlines():
        cells = [cell.strip('"') for cell in line.split(",")]
        if len(cells) >= 2 and cells[0] != "test":
            with contextlib.suppress(ValueError):
                rates[cells[0]] = float(cells[1])
    if not rates:
        raise BenchError("redis-benchmark printed no results")
    return rates


# --------------------------------------------------------------------------------------------
# Comparisons


def alternate(
    contenders: Sequence[Contender],
    reps: int,
    measure: Callable[[RunningServer], Sample],
) -> dict[str, list[Sample]]:
    """Measure every contender ``reps`` times, alternating A B C A B C ..., each on a fresh server.

    ``measure`` gets the running server and returns named figures (e.g. {"msg_per_s": ...}).
    """
    samples: dict[str, list[Sample]] = {c.name: [] for c in contenders}
    for rep in range(1, reps + 1):
        for contender in contenders:
            with contender.start() as server:
                sample = measure(server)
                server.check_alive()
            samples[contender.name].append(sample)
            shown = ", ".join(f"{k}={v:,.1f}" for k, v in sample.items())
            log(f"rep {rep}/{reps} {contender.name}: {shown}")
    return samples


def medians(samples: Mapping[str, Sequence[Sample]]) -> dict[str, Sample]:
    """Per contender, the median of each figure over its reps."""
    result = {}
    for name, reps in samples.items():
        keys = reps[0].keys() if reps else ()
        result[name] = {key: statistics.median(rep[key] for rep in reps) for key in keys}
    return result


def spread(values: Sequence[float]) -> float:
    """Half the range of the values relative to their median (a rough +-% of a figure)."""
    middle = statistics.median(values)
    return (max(values) - min(values)) / 2 / middle if middle else 0.0


def idle_memory(
    server: RunningServer, connections: int, *, mode: str = "length", settle: float = 1.0
) -> Sample:
    """RSS growth of the server's process tree with ``connections`` idle connections held open."""
    before = server.rss_kib()
    with IdleConnections(server.contender.port, connections, host=server.contender.host, mode=mode) as idle:
        connected = idle.ready["connected"]
        after = _settled_rss(server, settle)
        server.check_alive()
    return {
        "connected": connected,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_conn": (after - before) / connected,
    }


def _settled_rss(server: RunningServer, settle: float) -> int:
    """The server's RSS once it has stopped changing by more than 0.5% over ``settle`` seconds."""
    last = server.rss_kib()
    deadline = time.monotonic() + 10 * settle
    while time.monotonic() < deadline:
        time.sleep(settle)
        now = server.rss_kib()
        if abs(now - last) <= 0.005 * last:
            return now
        last = now
    return last


# --------------------------------------------------------------------------------------------
# Reporting


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def package_versions(names: Sequence[str]) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def tool_version(command: Sequence[str]) -> str:
    """A tool's version number from its version output (e.g. ["wrk", "-v"] -> "4.1.0")."""
    if shutil.which(command[0]) is None:
        return "not installed"
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = (result.stdout or result.stderr).strip().splitlines()
    if not lines:
        return "unknown"
    version = re.search(r"\d+\.\d+(?:\.\d+)*", lines[0])
    return version.group() if version else lines[0].strip()


def source_revision() -> str:
    """The git commit of the pyswoole measured; "+ local changes" when the working tree differs from it."""
    if pyswoole_source != REPO_DIR:
        return pyswoole_source.name.removeprefix("src-")
    head = _git("rev-parse", "--short=12", "HEAD")
    if not head:
        return "unknown"
    changed = _git("status", "--porcelain", "--", "pyswoole")
    return f"{head} + local changes" if changed else head


def environment(
    packages: Sequence[str] = (), tools: Sequence[Sequence[str]] = (), parameters: Mapping[str, Any] = {}
) -> str:
    """Markdown lines describing the machine, software versions and benchmark parameters."""
    versions = {"Python": platform.python_version(), **package_versions(["pyswoole", "uvloop", *packages])}
    versions["pyswoole"] += f" (git {source_revision()})"
    for command in tools:
        versions[command[0]] = tool_version(command)
    lines = [
        f"- Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Machine: {cpu_model()}, {os.cpu_count()} CPUs, Linux {platform.release()}; "
        f"server pinned to CPU {SERVER_CPU}, load generator to CPU {LOAD_CPU}"
        + (f", both at nice {niceness}" if niceness else ""),
        "- Software: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
    ]
    if parameters:
        lines.append("- Parameters: " + ", ".join(f"{k} {v}" for k, v in parameters.items()))
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    text = [[cell(v) for v in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in text]
    return "\n".join(lines)


RESULTS_HEADER = """\
# Benchmark results

Written by the bench scripts (`python3 bench/bench_*.py`), one section each; see bench/README.md.
Figures are medians over alternated repetitions on a fresh server each; compare the ratios
between contenders of one section, not absolute figures across sections or runs.
"""


def write_section(key: str, body: str, path: Path = RESULTS_PATH) -> None:
    """Replace (or append) the ``<!-- bench:KEY -->`` section of RESULTS.md, under a file lock."""
    begin, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with open(OUT_DIR / "results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = path.read_text() if path.exists() else RESULTS_HEADER
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            tail = rest.split(end, 1)[1]
            text = head + block + tail
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text)
        temporary.replace(path)


# --------------------------------------------------------------------------------------------
# Command line


class _BenchParser(argparse.ArgumentParser):
    """Remembers the options it parsed, so that bench_session() applies --nice and --revision."""

    def parse_args(self, *args: Any, **kwargs: Any) -> argparse.Namespace:  # type: ignore[override]
        global _options
        _options = super().parse_args(*args, **kwargs)
        return _options


_options = argparse.Namespace()


def bench_arguments(description: str, reps: int = 5, duration: float = 5.0) -> argparse.ArgumentParser:
    """An argument parser with the options every bench script shares."""
    parser = _BenchParser(description=description)
    parser.add_argument("--reps", type=int, default=reps, help="repetitions per contender (alternated)")
    parser.add_argument("--duration", type=float, default=duration, help="seconds measured per rep")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per rep")
    parser.add_argument("--only", help="comma-separated contender names to run (default: all)")
    parser.add_argument(
        "--revision",
        help="measure pyswoole as committed at this git revision (e.g. HEAD), not the working tree",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="nice value of servers and load generators (e.g. -10 on a busy machine)",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the section instead of writing RESULTS.md"
    )
    return parser


def select(contenders: Sequence[Contender], only: str | None) -> list[Contender]:
    if not only:
        return list(contenders)
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    unknown = set(wanted) - {c.name for c in contenders}
    if unknown:
        raise SystemExit(f"unknown contender(s): {', '.join(sorted(unknown))}")
    return [c for c in contenders if c.name in wanted]


@contextlib.contextmanager
def bench_session(nice: int | None = None, revision: str | None = None) -> Iterator[None]:
    """Set up a bench script's process (cleanup on signals, fd limit) and stop every server at the end.

    ``nice`` < 0 runs servers and load generators ahead of other work on a shared machine
    (it needs root; every contender gets the same priority). ``revision``: measure pyswoole as
    committed there (see export_revision) instead of the working tree. Both default to the
    ``--nice`` and ``--revision`` options parsed by a bench_arguments() parser, and stay set after
    the session, for the report (environment() names them).
    """
    global niceness, pyswoole_source
    revision = revision or getattr(_options, "revision", None)
    pyswoole_source = export_revision(revision) if revision else REPO_DIR
    niceness = nice if nice is not None else getattr(_options, "nice", 0)
    handlers = install_cleanup()
    raise_nofile_limit()
    try:
        yield
    finally:
        stop_all_servers()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def publish(
    key: str, body: str, no_write: bool, samples: Mapping[str, Sequence[Sample]] | None = None
) -> None:
    """Write (or with ``no_write`` print) a section; every rep's figures go to bench/out/KEY.json."""
    if samples is not None:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        (OUT_DIR / f"{key}.json").write_text(json.dumps(samples, indent=1))
    if no_write:
        print(body)
    else:
        write_section(key, body)
        log(f"wrote section {key!r} of {RESULTS_PATH.relative_to(REPO_DIR)}")


def python_server(script: str | Path, *args: str) -> list[str]:
    """The command that runs a Python server script with this interpreter."""
    return [sys.executable, str(script), *args]
