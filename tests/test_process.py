"""Process: real forks, pipes of both kinds, stdout redirection, exec, exit statuses, kill, names."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time

import pytest
import uvloop
from process_support import no_strays  # noqa: F401 - autouse: no orphans after any test

from pyswoole.process import Process


@pytest.fixture
def started():
    """Start processes through ``started(process)``; whatever is still alive afterwards is killed and reaped."""
    pids: list[int] = []

    def start(process: Process) -> int:
        pid = process.start()
        pids.append(pid)
        return pid

    yield start
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def reap(pid: int, timeout: float = 5.0) -> dict[str, int]:
    """Wait (bounded) for ``pid`` and return Process.wait-style status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            if os.WIFSIGNALED(status):
                return {"pid": pid, "code": 0, "signal": os.WTERMSIG(status)}
            return {"pid": pid, "code": os.WEXITSTATUS(status), "signal": 0}
        time.sleep(0.01)
    raise TimeoutError(f"child {pid} did not exit in {timeout} s")


def echo_twice(p: Process) -> None:
    """Read messages until end of file; answer each one with two messages."""
    while message := p.read(65536):
        p.write(b"echo:" + message)
        p.write(b"len:%d" % len(message))


def test_message_pipe_keeps_boundaries_and_reports_eof(started):
    p = Process(echo_twice)
    assert p.pipe == -1
    pid = started(p)
    p.set_timeout(5)
    for message in (b"a", b"hello", b"x" * 60_000):
        p.write(message)
    replies = [p.read(65536) for _ in range(6)]
    assert replies == [
        b"echo:a",
        b"len:1",
        b"echo:hello",
        b"len:5",
        b"echo:" + b"x" * 60_000,
        b"len:60000",
    ]
    p.close(Process.PIPE_WRITE)
    assert p.read() == b""
    assert reap(pid) == {"pid": pid, "code": 0, "signal": 0}


def test_message_larger_than_read_size_is_an_error(started):
    p = Process(lambda p: p.write(b"y" * 100))
    pid = started(p)
    p.set_timeout(5)
    with pytest.raises(ValueError, match="longer than 10 bytes"):
        p.read(10)
    reap(pid)


def test_stream_pipe_round_trip_of_a_megabyte(started):
    def echo(p: Process) -> None:
        while chunk := p.read(65536):
            p.write(chunk)

    p = Process(echo, pipe_type=Process.PIPE_STREAM)
    pid = started(p)
    p.set_timeout(5)
    payload = os.urandom(1 << 20)
    received = bytearray()
    # Write in slices and drain as we go, so neither side's socket buffer fills up.
    for offset in range(0, len(payload), 65536):
        p.write(payload[offset : offset + 65536])
        while len(received) < offset + 65536:
            received += p.read(65536)
    assert bytes(received) == payload
    p.close(Process.PIPE_WRITE)
    assert p.read() == b""
    assert reap(pid)["code"] == 0


def test_redirect_stdin_stdout_lets_the_parent_talk_to_print_and_input(started):
    def child(p: Process) -> None:
        print("child says hi")
        name = input()
        print(f"hello, {name}")

    p = Process(child, redirect_stdin_stdout=True)
    assert p.pipe_type == Process.PIPE_STREAM
    pid = started(p)
    p.set_timeout(5)
    p.write("pyswoole\n")
    output = b""
    while not output.endswith(b"hello, pyswoole\n"):
        chunk = p.read()
        assert chunk, f"end of file after {output!r}"
        output += chunk
    assert output == b"child says hi\nhello, pyswoole\n"
    assert reap(pid)["code"] == 0


def test_exec_output_reaches_the_parent_through_the_pipe(started):
    p = Process(lambda p: p.exec("/bin/sh", ["-c", 'echo "$0 $1"; exit 3', "AA", "BB"]), True)
    pid = started(p)
    p.set_timeout(5)
    assert p.read() == b"AA BB\n"
    assert reap(pid) == {"pid": pid, "code": 3, "signal": 0}


def test_exit_codes_crashes_and_signals_are_reported_by_wait(started):
    def sleeper(p: Process) -> None:
        time.sleep(30)

    def crash(p: Process) -> None:
        raise RuntimeError("deliberate crash in a test child")

    pids = {
        "clean": started(Process(lambda p: None, pipe_type=Process.PIPE_NONE)),
        "exit7": started(Process(lambda p: p.exit(7))),
        "crash": started(Process(crash)),
        "killed": started(Process(sleeper)),
    }
    assert Process.kill(pids["killed"], 0)
    assert Process.kill(pids["killed"], signal.SIGKILL)
    results = {}
    deadline = time.monotonic() + 5
    while not set(pids.values()) <= results.keys() and time.monotonic() < deadline:
        status = Process.wait()  # reaps any child of this process: other tests' exited ones are ignored
        assert status is not None
        results[status["pid"]] = status
    assert results[pids["clean"]] == {"pid": pids["clean"], "code": 0, "signal": 0}
    assert results[pids["exit7"]]["code"] == 7
    assert results[pids["crash"]]["code"] == 255
    assert results[pids["killed"]] == {"pid": pids["killed"], "code": 0, "signal": signal.SIGKILL}
    for pid in pids.values():
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    assert not Process.kill(pids["killed"], 0)


def test_ctrl_c_ends_a_child_quietly_with_status_130(started, capfd):
    def child(p: Process) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)

    pid = started(Process(child, pipe_type=Process.PIPE_NONE))
    assert reap(pid) == {"pid": pid, "code": 130, "signal": 0}
    assert "Traceback" not in capfd.readouterr().err


def test_name_sets_the_title_ps_shows(started):
    def child(p: Process) -> None:
        p.name("process child")
        p.write(b"named")
        time.sleep(10)

    p = Process(child)
    pid = started(p)
    p.set_timeout(5)
    assert p.read() == b"named"
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"process child"
    Process.kill(pid)
    assert reap(pid)["signal"] == signal.SIGTERM


def test_child_sees_its_own_pid_and_the_parent_the_childs(started):
    p = Process(lambda p: p.write(b"%d %d" % (p.pid, os.getpid())))
    pid = started(p)
    p.set_timeout(5)
    assert p.read() == b"%d %d" % (pid, pid)
    reap(pid)


def test_set_timeout_and_set_blocking(started):
    p = Process(lambda p: time.sleep(10))
    pid = started(p)
    p.set_timeout(0.1)
    with pytest.raises(TimeoutError):
        p.read()
    p.set_blocking(False)
    with pytest.raises(BlockingIOError):
        p.read()
    Process.kill(pid, signal.SIGKILL)
    reap(pid)


def test_export_socket_serves_coroutines(started):
    p = Process(echo_twice)
    pid = started(p)

    async def talk() -> list[bytes]:
        sock = p.export_socket()
        assert p.export_socket() is sock
        await sock.send(b"coroutine")
        return [await asyncio.wait_for(sock.recv(), 5) for _ in range(2)]

    assert asyncio.run(talk()) == [b"echo:coroutine", b"len:9"]
    p.close()
    p.export_socket().close()
    assert reap(pid)["code"] == 0


def test_start_from_inside_a_running_loop(started):
    """The child leaves the parent's running loop behind and can run a loop of its own."""

    async def child(p: Process) -> None:
        await asyncio.sleep(0.01)
        p.write(b"child loop ok")

    async def main() -> tuple[int, bytes]:
        p = Process(child)
        pid = started(p)
        return pid, await asyncio.wait_for(p.export_socket().recv(), 5)

    pid, data = uvloop.run(main())
    assert data == b"child loop ok"
    assert reap(pid)["code"] == 0


def test_async_target_and_enable_coroutine_run_in_an_event_loop(started):
    async def child(p: Process) -> None:
        await asyncio.sleep(0.01)
        sock = p.export_socket()
        await sock.send(b"from a coroutine")

    def plain(p: Process) -> None:
        p.write(b"loop running" if asyncio.get_running_loop() else b"no loop")

    for target, expected in ((child, b"from a coroutine"), (plain, b"loop running")):
        p = Process(target, enable_coroutine=target is plain)
        pid = started(p)
        p.set_timeout(5)
        assert p.read() == expected
        assert reap(pid)["code"] == 0


def test_without_pipe_read_write_fail_clearly():
    p = Process(lambda p: None, pipe_type=Process.PIPE_NONE)
    with pytest.raises(RuntimeError, match="no pipe"):
        p.write(b"x")
    with pytest.raises(TypeError):
        Process("not callable")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Process(lambda p: None, pipe_type=9)


def test_start_twice_is_refused(started):
    p = Process(lambda p: None, pipe_type=Process.PIPE_NONE)
    pid = started(p)
    with pytest.raises(RuntimeError, match="already started"):
        p.start()
    reap(pid)


def test_cpu_num_affinity_and_priority(started):
    assert Process.cpu_num() == os.cpu_count()

    def child(p: Process) -> None:
        Process.set_affinity([0])
        Process.set_priority(os.PRIO_PROCESS, 5)  # on the class: the calling process
        reported = (
            sorted(os.sched_getaffinity(0)),
            Process.get_priority(os.PRIO_PROCESS),
            p.get_priority(os.PRIO_PROCESS),
        )
        p.write(b"%r %d %d" % reported)
        p.read()  # the parent renices us meanwhile
        p.write(b"%d" % os.getpriority(os.PRIO_PROCESS, 0))

    p = Process(child)
    pid = started(p)
    p.set_timeout(5)
    assert p.read() == b"[0] 5 5"
    p.set_priority(os.PRIO_PROCESS, 7)  # on the parent's handle: the child
    assert p.get_priority(os.PRIO_PROCESS) == 7
    assert os.getpriority(os.PRIO_PROCESS, 0) != 7
    p.write(b"go")
    assert p.read() == b"7"
    assert reap(pid)["code"] == 0


def test_close_one_direction(started):
    """close(PIPE_READ): this side reads end of file, the other side's write fails; writing still works."""

    def child(p: Process) -> None:
        assert p.read() == b"still writable"
        try:
            p.write(b"nobody reads this")
        except BrokenPipeError:
            p.exit(3)

    p = Process(child)
    pid = started(p)
    p.set_timeout(5)
    p.close(Process.PIPE_READ)
    assert p.read() == b""
    p.write(b"still writable")
    assert reap(pid) == {"pid": pid, "code": 3, "signal": 0}
    with pytest.raises(ValueError, match="which"):
        p.close(9)
    p.close()
    assert p.pipe == -1


def test_write_to_an_exited_child_fails(started):
    p = Process(lambda p: None)
    pid = started(p)
    reap(pid)
    with pytest.raises((BrokenPipeError, ConnectionResetError, ConnectionRefusedError)):
        p.write(b"anyone?")
    assert p.read() == b""


def test_siblings_do_not_hold_each_others_pipes(started):
    """A child started later must not keep an earlier child's pipe open, or that one never sees EOF."""

    def until_eof(p: Process) -> None:
        while p.read():
            pass

    first = Process(until_eof)
    first_pid = started(first)
    second_pid = started(Process(lambda p: time.sleep(10)))
    first.write(b"one message")
    first.close()
    assert reap(first_pid) == {"pid": first_pid, "code": 0, "signal": 0}
    Process.kill(second_pid, signal.SIGKILL)
    reap(second_pid)


def test_pipe_types_are_socket_pairs(started):
    message = Process(lambda p: None)
    stream = Process(lambda p: None, pipe_type=Process.PIPE_STREAM)
    for p, kind in ((message, socket.SOCK_SEQPACKET), (stream, socket.SOCK_STREAM)):
        pid = started(p)
        sock = socket.socket(fileno=os.dup(p.pipe))
        assert sock.type == kind and sock.family == socket.AF_UNIX
        sock.close()
        reap(pid)
