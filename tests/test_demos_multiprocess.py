"""The seed's multiprocess demos (PHP pcntl/posix and Swoole's Process family), run for real as scripts."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sysv_ipc
from process_support import no_strays  # noqa: F401 - autouse: no orphans after any test

from pyswoole.process import ftok

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def run(name: str, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )


@pytest.fixture
def spawn():
    """Start an example in the background; it is killed (by pid) when the test ends."""
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / name), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            **kwargs,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.fixture
def ipc_key(tmp_path) -> int:
    """A System V key of this test's own (``ftok`` of a fresh file), so that concurrent runs never share
    the examples' default keys."""
    anchor = tmp_path / "ipc-key"
    anchor.write_bytes(b"")
    return ftok(str(anchor), "p")


def stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the name (state, ppid, pgrp, session, ...), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None


def running(pid: int) -> bool:
    fields = stat(pid)
    return fields is not None and fields[0] != "Z"


def children_of(pid: int) -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and (stat(int(e)) or ["", ""])[1] == str(pid)]


def live_children_of(pid: int) -> list[int]:
    return [child for child in children_of(pid) if running(child)]


def title(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")[0].decode()


def eventually(predicate, timeout: float = 5.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def kill_tree(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port: int, timeout: float = 5.0) -> None:
    def accepts() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    # Probing costs one connection; the servers under test treat it as an ordinary client.
    assert eventually(accepts, timeout), f"nothing listens on {port}"


def read_pid_file(path: Path, timeout: float = 5.0) -> int:
    assert eventually(path.exists, timeout), f"{path} never appeared"
    return int(path.read_text())


# -- PHP multiprocess (§1) -----------------------------------------------------------------------------


def test_process_first():
    result = run("process_first.py", "--sleep", "0.1")
    assert result.returncode == 0, result.stderr
    parent, child = re.fullmatch(
        r"当前主进程ID = (\d+)\n子进程的ID = (\d+)\n我将要退出啦\n子进程\((\d+)\)退出\n父进程ID = (\d+)\n",
        result.stdout,
    ).group(1, 2)
    assert parent != child
    assert result.stdout.endswith(f"子进程({child})退出\n父进程ID = {parent}\n")


def test_process_exec_runs_test_sh(tmp_path):
    assert b"\r" not in (EXAMPLES / "test.sh").read_bytes()
    assert os.access(EXAMPLES / "test.sh", os.X_OK)
    output = tmp_path / "a.txt"
    result = run("process_exec.py", "--sleep", "0.1", "--output", str(output))
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(
        r"当前主进程ID = (\d+)\n子进程ID = (\d+)\n子进程\((\d+)\)退出\n父进程ID = (\d+)\n", result.stdout
    )
    assert match and match[2] == match[3] and match[1] == match[4]
    assert output.read_text() == "AA\nBB\n"


def test_process_monitor_replaces_dead_children_and_stops_cleanly(spawn):
    proc = spawn("process_monitor.py")
    lines = [proc.stdout.readline() for _ in range(4)]
    parent = int(lines[0].removeprefix("当前主进程ID = "))
    children = [int(line.removeprefix("子进程的进程ID = ")) for line in lines[1:]]
    try:
        assert sorted(live_children_of(parent)) == sorted(children)
        os.kill(children[0], signal.SIGKILL)
        assert proc.stdout.readline() == f"子进程{children[0]}退出.\n"
        assert proc.stdout.readline() == "中断子进程的信号值是: 9\n"
        replacement = int(proc.stdout.readline().removeprefix("子进程的进程ID = "))
        assert replacement not in children
        assert sorted(live_children_of(parent)) == sorted([*children[1:], replacement])
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=5)
        assert out == "完成\n", err
        assert not any(running(pid) for pid in [*children, replacement])
    finally:
        kill_tree([*children, *children_of(parent)])


def test_process_daemon_detaches_and_keeps_three_children(spawn, tmp_path):
    pid_file = tmp_path / "daemon.pid"
    launcher = spawn("process_daemon.py", "--pid-file", str(pid_file))
    assert launcher.wait(5) == 0
    assert launcher.stdout.read() == ""
    daemon = read_pid_file(pid_file)
    try:
        fields = stat(daemon)
        assert int(fields[3]) == daemon  # session leader of a new session
        assert fields[4] == "0"  # tty_nr: no controlling terminal
        assert os.readlink(f"/proc/{daemon}/cwd") == "/"
        assert {os.readlink(f"/proc/{daemon}/fd/{fd}") for fd in (0, 1, 2)} == {"/dev/null"}
        with open(f"/proc/{daemon}/status") as f:
            assert "Umask:\t0000" in f.read()
        children = eventually(lambda: len(live_children_of(daemon)) == 3 and live_children_of(daemon))
        assert children
        os.kill(children[0], signal.SIGKILL)
        replaced = eventually(
            lambda: (c := live_children_of(daemon)) and len(c) == 3 and children[0] not in c and c
        )
        assert replaced, "the dead child was not replaced"
        os.kill(daemon, signal.SIGTERM)
        stopped = eventually(lambda: not running(daemon) and not any(running(pid) for pid in replaced), 10)
        assert stopped, [(pid, stat(pid)) for pid in (daemon, *replaced)]
        assert eventually(lambda: not pid_file.exists())
    finally:
        kill_tree([daemon, *children_of(daemon)])


def test_process_signal_start_reload_stop(tmp_path):
    pid_file = tmp_path / "master_pid"
    option = ("--pid-file", str(pid_file))
    assert run("process_signal.py").stdout == "请重新输入命令!\n"
    started = run("process_signal.py", "start", *option)
    assert started.returncode == 0 and started.stdout == "", started.stderr
    master = read_pid_file(pid_file)
    try:
        assert "\n" not in pid_file.read_text()
        assert run("process_signal.py", "start", *option).stdout == "程序已经运行\n"
        first = eventually(lambda: len(live_children_of(master)) == 3 and live_children_of(master))
        assert first
        os.kill(first[0], signal.SIGTERM)  # children ignore SIGTERM
        time.sleep(0.1)
        assert running(first[0])
        assert run("process_signal.py", "reload", *option).returncode == 0
        second = eventually(
            lambda: (c := live_children_of(master)) and len(c) == 3 and not set(c) & set(first) and c
        )
        assert second, "reload did not replace the children"
        assert not any(running(pid) for pid in first)
        assert run("process_signal.py", "stop", *option).returncode == 0
        assert not running(master)
        assert not pid_file.exists()
        assert eventually(lambda: not any(running(pid) for pid in second))
        # A pid file left by a killed daemon does not block the next start.
        stale = master
        pid_file.write_text(str(stale))
        assert run("process_signal.py", "start", *option).stdout == ""
        assert eventually(lambda: pid_file.read_text() != str(stale))
        master = int(pid_file.read_text())
        assert running(master)
        assert run("process_signal.py", "stop", *option).returncode == 0
        assert not running(master)
    finally:
        kill_tree([master, *children_of(master)])


def test_shmop_writes_and_shmop2_reads_the_segment(ipc_key):
    key = str(ipc_key)
    try:
        first = subprocess.run(
            [sys.executable, str(EXAMPLES / "shmop.py"), "--key", key],
            capture_output=True,
            timeout=20,
            env=ENV,
        )
        assert first.returncode == 0, first.stderr
        block = b"Hello" + b"\0" * 195
        assert first.stdout == f"{key}\nSize of shmop = 200\nBytes of write = 5\n".encode() + block + b"\n"
        second = subprocess.run(
            [sys.executable, str(EXAMPLES / "shmop2.py"), "--key", key, "--delete"],
            capture_output=True,
            timeout=20,
            env=ENV,
        )
        assert second.returncode == 0, second.stderr
        assert second.stdout == block + b"\n"
        with pytest.raises(sysv_ipc.ExistentialError):
            sysv_ipc.SharedMemory(ipc_key)
    finally:
        try:
            sysv_ipc.SharedMemory(ipc_key).remove()
        except sysv_ipc.ExistentialError:
            pass


def test_shmop_default_key_is_ftok_of_shmop_py(tmp_path):
    """Without --key both derive ftok(shmop.py, 't'); copies in a fresh folder give a key of our own."""
    for name in ("shmop.py", "shmop2.py"):
        (tmp_path / name).write_bytes((EXAMPLES / name).read_bytes())
    key = ftok(str(tmp_path / "shmop.py"), "t")
    try:
        first = subprocess.run(
            [sys.executable, str(tmp_path / "shmop.py")], capture_output=True, timeout=20, env=ENV
        )
        assert first.stdout.startswith(f"{key}\n".encode()), first.stderr
        second = subprocess.run(
            [sys.executable, str(tmp_path / "shmop2.py"), "--delete"],
            capture_output=True,
            timeout=20,
            env=ENV,
        )
        assert second.stdout == b"Hello" + b"\0" * 195 + b"\n", second.stderr
    finally:
        try:
            sysv_ipc.SharedMemory(key).remove()
        except sysv_ipc.ExistentialError:
            pass


def test_echo_server_and_client(spawn):
    port = free_port()
    server = spawn("echo_server.py", "--port", str(port))
    wait_listening(port)
    numbers = set()
    for _ in range(3):
        result = run("echo_client.py", "--port", str(port))
        match = re.fullmatch(r"Welcome - (\d+)\n", result.stdout)
        assert match, (result.stdout, result.stderr)
        assert 0 <= int(match[1]) <= 2147483647
        numbers.add(match[1])
    assert len(numbers) > 1
    assert server.poll() is None


def test_stream_echo_server_and_client_and_a_silent_client(spawn):
    port = free_port()
    server = spawn("stream_echo_server.py", "--port", str(port), "--read-timeout", "0.3")
    wait_listening(port)  # the probe closes without sending: the server dumps string(0) ""
    assert server.stdout.readline() == 'string(0) ""\n'
    result = run("stream_echo_client.py", "--port", str(port))
    assert re.fullmatch(r"Welcome - \d+\n", result.stdout), result.stderr
    assert server.stdout.readline() == 'string(5) "Hello"\n'
    with socket.create_connection(("127.0.0.1", port), timeout=5) as silent:
        started = time.monotonic()
        assert silent.recv(100) == b""  # closed after the read timeout, without an answer
        assert time.monotonic() - started < 3
    assert re.fullmatch(r"Welcome - \d+\n", run("stream_echo_client.py", "--port", str(port)).stdout)


def cpu_seconds(pid: int) -> float:
    fields = stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_echo_multiplex_serves_many_clients_without_spinning(spawn):
    port = free_port()
    server = spawn("echo_multiplex.py", "--port", str(port))
    wait_listening(port)
    assert server.stdout.readline() == "New client connected\n"
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
    try:
        assert [server.stdout.readline() for _ in range(3)] == ["New client connected\n"] * 3
        for index, client in enumerate(clients):
            client.sendall(b"from client %d\n" % index)
        assert sorted(server.stdout.readline() for _ in range(3)) == [f"from client {i}\n" for i in range(3)]
        clients[0].close()
        time.sleep(0.1)
        before = cpu_seconds(server.pid)
        time.sleep(0.5)
        assert cpu_seconds(server.pid) - before < 0.1, "the server spins after a client closed"
        clients[1].sendall(b"still served\n")
        assert server.stdout.readline() == "still served\n"
    finally:
        for client in clients:
            client.close()


SITE_PAGES = {
    "/topic/1.html": '<div><a class="search-works-thumb big" href="/detail/1.html"><img src="t.jpg"></a>'
    '<a class="search-works-thumb" href="detail/2.html">two</a><a class="other" href="/detail/9.html">x</a></div>',
    "/detail/1.html": '<img id="J_worksImg" src="/img/1.jpg"><img id="other" src="/img/no.jpg">',
    "/topic/detail/2.html": '<p><img id="J_worksImg" src="2.jpg"></p>',
    "/topic/2.html": '<a class="search-works-thumb" href="/detail/missing.html">gone</a>',
    "/topic/3.html": "<p>no works here</p>",
}


class FixtureSite(BaseHTTPRequestHandler):
    """Serves SITE_PAGES: three topic pages, their detail pages (one missing), and nothing else."""

    def do_GET(self) -> None:
        body = SITE_PAGES.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write((body or "not found").encode())

    def log_message(self, *args) -> None:
        pass


def parse_print_r(text: str) -> dict[int, list[str]]:
    blocks = {}
    for pid, body in re.findall(r" {4}\[(\d+)\] => Array\n {8}\(\n(.*?) {8}\)\n", text, re.S):
        blocks[int(pid)] = re.findall(r" {12}\[\d+\] => (.*)\n", body)
    return blocks


def test_crawler_against_a_local_site():
    site = ThreadingHTTPServer(("127.0.0.1", 0), FixtureSite)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{site.server_address[1]}"
    try:
        result = run("crawler.py", f"{base}/topic/1.html", f"{base}/topic/2.html", f"{base}/topic/3.html")
    finally:
        site.shutdown()
        site.server_close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("Done\n")
    blocks = parse_print_r(result.stdout)
    assert list(blocks.values()) == [[f"{base}/img/1.jpg", f"{base}/topic/detail/2.jpg"]]
    assert (
        result.stdout.count("Array\n(\n)\n") == 2
    )  # the topic whose detail page is missing, and the empty one
    assert "/detail/missing.html: HTTP Error 404" in result.stderr


# -- Swoole's Process family (§16) ---------------------------------------------------------------------


def test_process_names_children_and_leaves_no_zombies(spawn):
    proc = spawn("process.py", "--child-sleep", "0.4", "--master-sleep", "1.2")
    master = proc.pid
    children = eventually(lambda: len(live_children_of(master)) == 5 and live_children_of(master))
    assert children, "5 children did not start"
    assert eventually(lambda: title(master) == "process master")
    assert eventually(lambda: all(title(pid) == "process child" for pid in children))
    assert eventually(lambda: not children_of(master), 3), "children left as zombies"
    assert running(master)  # still in its sleep
    assert proc.wait(5) == 0


def test_write_read():
    result = run("write_read.py", "--master-sleep", "0")
    assert result.returncode == 0, result.stderr
    # Four lines, each preceded by an empty line and starting with a space; the two processes' lines
    # may interleave, but each process's own lines keep their order.
    lines = re.findall(r"\n ([^\n]*)\n", result.stdout)
    assert "".join(f"\n {line}\n" for line in lines) == result.stdout
    assert sorted(lines) == sorted(
        [
            "child send start",
            "child send end",
            "received from child: from child, hello",
            "received from master: form master, hello ~",
        ]
    )
    child = [line for line in lines if not line.startswith("received from child")]
    assert child == ["child send start", "child send end", "received from master: form master, hello ~"]


def queue_exists(key: int) -> bool:
    try:
        sysv_ipc.MessageQueue(key)
        return True
    except sysv_ipc.ExistentialError:
        return False


def test_push_pop_competing_children_take_each_message_once(ipc_key):
    key = ipc_key
    result = run(
        "push_pop.py", "--rounds", "3", "--interval", "0.2", "--start-delay", "0.1", "--queue-key", str(key)
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.split("\n") if line]
    assert lines.count(" ======================== ") == 3
    received = [
        re.fullmatch(r" (\d+) received msg ([a-e]) ", line).groups() for line in lines if "msg" in line
    ]
    assert sorted(letter for _, letter in received) == sorted("abcde" * 3)
    assert len({pid for pid, _ in received}) <= 5
    assert not queue_exists(key), "the queue was not freed"


def test_daemon_runs_the_queue_detached_and_stops_on_sigterm(spawn, tmp_path, ipc_key):
    pid_file = tmp_path / "daemon.pid"
    key = ipc_key
    launcher = spawn("daemon.py", "--pid-file", str(pid_file), "--interval", "0.1", "--queue-key", str(key))
    assert launcher.wait(5) == 0 and launcher.stdout.read() == ""
    master = read_pid_file(pid_file)
    try:
        assert int(stat(master)[3]) == master
        assert os.readlink(f"/proc/{master}/cwd") == "/"
        children = eventually(lambda: len(live_children_of(master)) == 5 and live_children_of(master))
        assert children
        assert eventually(lambda: title(master) == "process master")
        assert eventually(lambda: all(title(pid) == "process child" for pid in children))
        assert queue_exists(key)
        time.sleep(1.3)  # a few rounds of a..e go through the queue
        assert sysv_ipc.MessageQueue(key).current_messages <= 5
        os.kill(master, signal.SIGTERM)
        assert eventually(lambda: not running(master) and not any(running(pid) for pid in children))
        assert not queue_exists(key)
        assert not pid_file.exists()
    finally:
        kill_tree([master, *children_of(master)])
        if queue_exists(key):
            sysv_ipc.MessageQueue(key).remove()


def test_signal_reaps_every_child_then_exits():
    result = run("signal.py", "--min", "0.05", "--max", "0.3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("end\n 17 \n")
    statuses = re.findall(
        r"Array\n\(\n {4}\[pid\] => (\d+)\n {4}\[code\] => (\d+)\n {4}\[signal\] => (\d+)\n\)\n",
        result.stdout,
    )
    assert len({pid for pid, _, _ in statuses}) == 5
    assert {(code, sig) for _, code, sig in statuses} == {("0", "0")}


def test_examples_folder_on_sys_path_does_not_hide_the_signal_module():
    probe = (
        f"import sys; sys.path.insert(0, {str(EXAMPLES)!r}); import asyncio, signal, json;"
        "print(json.dumps([signal.__file__, int(signal.SIGTERM), hasattr(signal, 'set_wakeup_fd')]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=20, env=ENV
    )
    path, sigterm, complete = json.loads(result.stdout)
    assert not path.startswith(str(EXAMPLES)) and sigterm == signal.SIGTERM and complete


def test_pool_restarts_workers_with_their_ids(spawn):
    proc = spawn("pool.py", "--workers", "3", "--min", "0.1", "--max", "0.25")
    output = b""
    deadline = time.monotonic() + 20
    while not all(output.split().count(b"%d" % i) >= 2 for i in range(3)) and time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 1)[0]:
            output += os.read(proc.stdout.fileno(), 4096)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    text = output.decode() + out
    assert re.fullmatch(r"(\n \d \n)+", text), text  # "\n <worker id> \n", as the original prints
    ids = text.split()
    assert set(ids) == {"0", "1", "2"}
    assert all(ids.count(worker_id) >= 2 for worker_id in "012"), ids
    assert not children_of(proc.pid)


def test_pool_ctrl_c_stops_manager_and_workers_quietly(spawn):
    proc = spawn("pool.py", "--workers", "2", "--min", "5", "--max", "5", start_new_session=True)
    workers = eventually(lambda: len(live_children_of(proc.pid)) == 2 and live_children_of(proc.pid), 10)
    assert workers
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl+C in a terminal does
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Traceback" not in err, err
    assert not any(running(pid) for pid in workers)


def test_rand_children_inherit_the_generator_unless_reseeded():
    same = run("rand.py")
    numbers = same.stdout.split()
    assert len(numbers) == 3 and len(set(numbers)) == 1, same.stderr
    assert same.stdout == f"\n{numbers[0]}\n" * 3
    fixed = run("rand.py", "--fix", "--children", "8").stdout.split()
    assert len(fixed) == 8 and len(set(fixed)) > 1
