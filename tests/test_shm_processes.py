"""Table, Atomic and Lock across forked processes: exactness, torn rows, and SIGKILL at any point."""

import array
import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator

import pytest
from helpers import ROOT, free_port

from pyswoole.shm import Atomic, AtomicLong, Lock, Table, TableFullError

WAIT_TIMEOUT = 20.0


def fork(target: Callable[[], None]) -> int:
    """Run target in a forked child that exits 0 on success and 1 on an exception."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            target()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    return pid


def reap(pid: int, timeout: float = WAIT_TIMEOUT) -> int:
    """Wait for a child; kill it and fail when it does not finish within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"child {pid} did not finish within {timeout}s (deadlock?)")


@pytest.fixture
def children() -> Iterator[list[int]]:
    """Pids registered here are killed and reaped after the test, whatever happens."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def run_all(children: list[int], targets: list[Callable[[], None]]) -> None:
    pids = [fork(target) for target in targets]
    children.extend(pids)
    assert [reap(pid) for pid in pids] == [0] * len(pids)


def test_four_processes_incr_exactly(children):
    per_process, processes = 100_000, 4
    table = Table(8)
    table.column("hits", Table.TYPE_INT)
    table.column("total", Table.TYPE_FLOAT)
    table.create()
    counter, wide = Atomic(), AtomicLong()

    def work():
        for _ in range(per_process):
            table.incr("key", "hits")
            table.incr("key", "total", 0.5)
            counter.add(1)
            wide.sub(3)

    run_all(children, [work] * processes)
    total = per_process * processes
    assert table.get("key") == {"hits": total, "total": total * 0.5}
    assert counter.get() == total
    assert wide.get() == -3 * total


def test_incr_if_and_replace_loops_from_four_processes_lose_no_update(children):
    per_process, processes = 20_000, 4
    table = Table(8)
    table.column("hits", Table.TYPE_INT)
    table.column("text", Table.TYPE_STRING, 24)
    table.create()
    ready = Atomic()

    def work():
        ready.add(1)
        deadline = time.monotonic() + WAIT_TIMEOUT
        while ready.get() < processes and time.monotonic() < deadline:  # start together: contend
            pass
        for _ in range(per_process):
            assert table.incr_if("counter", "hits", 1, {"text": ""}) is not None
            while True:  # read, compute, compare-and-set: retried when another process won
                row = table.get("text")
                number = int(row["text"]) if row else 0
                if table.replace("text", row, {"text": b"%d" % (number + 1)}):
                    break

    run_all(children, [work] * processes)
    assert table.get("counter", "hits") == per_process * processes
    assert table.get("text", "text") == b"%d" % (per_process * processes)


def test_atomic_add_hands_out_unique_ids(children, tmp_path):
    per_process, processes = 20_000, 4
    ids = Atomic()

    def take(i):
        def work():
            taken = array.array("I", (ids.add(1) for _ in range(per_process)))
            (tmp_path / f"{i}.bin").write_bytes(taken.tobytes())

        return work

    run_all(children, [take(i) for i in range(processes)])
    seen = array.array("I")
    for i in range(processes):
        seen.frombytes((tmp_path / f"{i}.bin").read_bytes())
    assert sorted(seen) == list(range(1, per_process * processes + 1))


def test_writes_in_one_process_are_seen_by_the_next_read_in_another(children):
    table = Table(16)
    table.column("owner", Table.TYPE_INT)
    table.column("addr", Table.TYPE_STRING, 32)
    table.create()
    turn = Atomic()

    def worker(me, other):
        def work():
            deadline = time.monotonic() + WAIT_TIMEOUT
            for step in range(200):
                while turn.get() % 2 != me:
                    assert time.monotonic() < deadline
                other_step = step - 1 + me  # worker 0 goes first
                if other_step >= 0:
                    assert table.get(f"{other}", "owner") == other_step + other * 1000
                table.set(f"{me}", {"owner": step + me * 1000, "addr": f"127.0.0.1:{step}"})
                turn.add(1)

        return work

    run_all(children, [worker(0, 1), worker(1, 0)])
    assert dict(iter(table)) == {
        "0": {"owner": 199, "addr": "127.0.0.1:199"},
        "1": {"owner": 1199, "addr": "127.0.0.1:199"},
    }


def consistent(row: dict) -> bool:
    """Rows written by the torn-row writers: a == b and blob repeats str(a)."""
    blob = row["blob"]
    return row["a"] == row["b"] and blob == (str(row["a"]) * 200)[: len(blob)] and len(blob) >= 100


def blob_row(value: int) -> dict:
    return {"a": value, "b": value, "blob": (str(value) * 200)[: 100 + value % 900]}


def blob_table(size: int) -> Table:
    table = Table(size)
    table.column("a", Table.TYPE_INT)
    table.column("b", Table.TYPE_INT)
    table.column("hits", Table.TYPE_INT)
    table.column("blob", Table.TYPE_STRING, 1000)
    table.create()
    return table


def test_concurrent_readers_never_see_torn_rows_or_lose_a_present_key(children):
    table = blob_table(64)
    table.set("stable", blob_row(7))
    stop, torn, reads = Atomic(), AtomicLong(), AtomicLong()

    def writer():
        rnd = random.Random(os.getpid())
        while not stop.get():
            key = f"k{rnd.randrange(40)}"
            if rnd.random() < 0.3:
                table.delete(key)
            else:
                table.set(key, blob_row(rnd.randrange(10**6)))
            table.set("stable", blob_row(rnd.randrange(10**6)))

    def reader():
        rnd = random.Random(os.getpid())
        while not stop.get():
            row = table.get("stable")
            keyed = table.get(f"k{rnd.randrange(40)}")
            bad = row is None or not consistent(row) or (keyed is not None and not consistent(keyed))
            bad = bad or not all(consistent(r) for _, r in table)
            torn.add(bad)
            reads.add(1)

    pids = [fork(writer), fork(writer), fork(reader), fork(reader)]
    children.extend(pids)
    time.sleep(1.0)
    stop.set(1)
    assert [reap(pid) for pid in pids] == [0, 0, 0, 0]
    assert reads.get() > 100
    assert torn.get() == 0


def test_sigkill_at_any_point_never_leaves_the_table_locked(children):
    table = blob_table(32)
    stop, torn, reads, writing = Atomic(), AtomicLong(), AtomicLong(), Atomic()

    def writer():
        rnd = random.Random(os.getpid())
        writing.add(1)
        while True:
            key = f"k{rnd.randrange(48)}"  # more keys than rows: full-table errors too
            op = rnd.random()
            try:
                if op < 0.4:
                    table.set(key, blob_row(rnd.randrange(10**6)))
                elif op < 0.6:
                    table.incr(key, "hits")
                elif op < 0.7:
                    table.incr_if(key, "hits", 1, {"a": 0})
                elif op < 0.8:
                    row = table.get(key)
                    table.replace(
                        key, row, None if row and rnd.random() < 0.5 else blob_row(rnd.randrange(10**6))
                    )
                else:
                    table.delete(key)
            except RuntimeError:  # TableFullError
                pass

    def reader():
        while not stop.get():
            rows = list(table)
            rows.append(("k1", table.get("k1")))
            torn.add(sum(1 for _, row in rows if row is not None and row["blob"] and not consistent(row)))
            reads.add(1)

    reader_pid = fork(reader)
    children.append(reader_pid)
    rnd = random.Random(1)
    for cycle in range(60):
        writers = [fork(writer), fork(writer)]
        children.extend(writers)
        deadline = time.monotonic() + 5
        while writing.get() < 2 * (cycle + 1) and time.monotonic() < deadline:  # both are writing
            time.sleep(0.0002)
        for pid in writers:
            time.sleep(rnd.uniform(0.001, 0.006))
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)

    def check_every_operation_completes():
        assert table.stats()["recoveries"] > 0
        for i in range(48):
            table.delete(f"k{i}")
        assert len(table) == table.count() == 0 and list(table) == []
        for i in range(32):
            assert table.set(f"k{i}", blob_row(i)) is True
            assert table.incr(f"k{i}", "hits") == 1
            assert table.decr(f"k{i}", "hits", 2) == -1
            assert table.incr_if(f"k{i}", "hits", 1, {"a": i}) == 0
            assert table.replace(f"k{i}", {"hits": 0}, {"hits": 5}) is True
        with pytest.raises(TableFullError):
            table.set("k32", blob_row(32))
        for i in range(32):
            assert consistent(table.get(f"k{i}")) and f"k{i}" in table and table.exists(f"k{i}")
            assert table.get(f"k{i}", "hits") == 5 and table.get(f"k{i}", ("a", "b")) == (i, i)
        assert {key: consistent(row) for key, row in table} == {f"k{i}": True for i in range(32)}
        assert table.delete("k0") is True and table.get("k0") is None
        assert table.stats()["count"] == len(table) == 31

    stop.set(1)
    assert reap(reader_pid) == 0
    run_all(children, [check_every_operation_completes])
    assert reads.get() > 0
    assert torn.get() == 0


def test_lock_excludes_across_processes(children):
    lock = Lock()
    table = Table(1)
    table.column("n", Table.TYPE_INT)
    table.create()
    table.set("n", {"n": 0})

    def work():
        for _ in range(5_000):
            with lock:  # a non-atomic read-modify-write, made exact by the lock
                table.set("n", {"n": table.get("n", "n") + 1})

    run_all(children, [work] * 3)
    assert table.get("n", "n") == 15_000


@pytest.mark.parametrize(
    ("kind", "hold", "then"),
    [
        (Lock.MUTEX, "lock", "lockwait"),
        (Lock.MUTEX, "lock", "lock"),
        (Lock.MUTEX, "with", "trylock"),
        (Lock.RWLOCK, "lock", "lockwait"),
        (Lock.RWLOCK, "with", "trylock"),
        (Lock.RWLOCK, "lock", "lock_read"),
        (Lock.RWLOCK, "lock", "trylock_read"),
        (Lock.RWLOCK, "lock_read", "lockwait"),
        (Lock.RWLOCK, "trylock_read", "lock"),
    ],
)
def test_lock_of_a_killed_holder_is_recovered(children, kind, hold, then):
    lock, held = Lock(kind), Atomic()

    def holder():
        if hold == "with":
            with lock:
                held.wakeup()
                time.sleep(60)
        assert getattr(lock, hold)()
        held.wakeup()
        time.sleep(60)

    pid = fork(holder)
    children.append(pid)
    assert held.wait(5)
    assert lock.trylock() is False
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert (lock.lockwait(5) if then == "lockwait" else getattr(lock, then)()) is True
    assert lock.recoveries >= 1
    lock.unlock()
    assert lock.trylock() is True
    lock.unlock()


def test_atomic_wakeup_crosses_processes(children):
    ready, event = Atomic(), AtomicLong()

    def waiter():
        ready.wakeup()
        assert event.wait(5) is True

    pid = fork(waiter)
    children.append(pid)
    assert ready.wait(5)
    time.sleep(0.05)
    event.wakeup()
    assert reap(pid, 5) == 0


def test_reader_alone_repairs_a_row_left_half_written_by_a_killed_writer(children):
    """Big rows keep the writer inside the lock most of the time; after each kill only a reader runs."""
    table = Table(2)
    table.column("n", Table.TYPE_INT)
    table.column("blob", Table.TYPE_STRING, 1 << 20)
    table.create()
    table.set("big", {"n": 0, "blob": "0" * (1 << 20)})
    started = Atomic()

    def writer():
        rows = [{"n": i, "blob": str(i) * (1 << 20)} for i in range(1, 10)]
        started.wakeup()
        while True:
            for row in rows:
                table.set("big", row)

    def reader():
        row = table.get("big")
        assert row["blob"] == str(row["n"]) * (1 << 20)

    for _ in range(10):
        pid = fork(writer)
        children.append(pid)
        assert started.wait(5)
        time.sleep(random.uniform(0.001, 0.003))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        run_all(children, [reader])
    assert table.stats()["recoveries"] >= 1


def test_rwlock_readers_in_two_processes_share_and_exclude_writers(children):
    lock, held, release = Lock(Lock.RWLOCK), Atomic(), Atomic()

    def reader():
        assert lock.lock_read()
        held.wakeup()
        assert release.wait(10)
        lock.unlock()

    pid = fork(reader)
    children.append(pid)
    assert held.wait(5)
    assert lock.trylock_read() is True  # a second reader, in another process
    assert lock.trylock() is False
    lock.unlock()
    assert lock.lockwait(0.05) is False  # the other process still reads
    release.wakeup()
    assert reap(pid) == 0
    assert lock.lockwait(5) is True
    lock.unlock()


def test_atomic_cmpset_and_set_across_processes(children):
    per_process, processes = 5_000, 4
    narrow, wide, go = Atomic(), AtomicLong(-(2**40)), Atomic()

    def work():
        deadline = time.monotonic() + WAIT_TIMEOUT
        while go.get() != 7:  # set() in the parent is seen here
            assert time.monotonic() < deadline
        for _ in range(per_process):  # read, then compare-and-set: retried when another process won
            while not narrow.cmpset(value := narrow.get(), value + 1):
                pass
            while not wide.cmpset(value := wide.get(), value - 1):
                pass

    pids = [fork(work) for _ in range(processes)]
    children.extend(pids)
    go.set(7)
    assert [reap(pid) for pid in pids] == [0] * processes
    assert narrow.get() == per_process * processes
    assert wide.get() == -(2**40) - per_process * processes


@pytest.mark.parametrize("cls", [Atomic, AtomicLong])
def test_wakeup_n_releases_n_waiting_processes(children, cls):
    event, ready, released = cls(), Atomic(), Atomic()

    def waiter():
        ready.add(1)
        assert event.wait(WAIT_TIMEOUT) is True
        released.add(1)

    pids = [fork(waiter) for _ in range(3)]
    children.extend(pids)

    def released_becomes(n: int) -> int:
        deadline = time.monotonic() + 5
        while released.get() < n and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.2)  # and no more follow
        return released.get()

    deadline = time.monotonic() + 5
    while ready.get() < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.1)  # let them fall asleep
    assert event.wakeup(2) is True
    assert released_becomes(2) == 2  # two of the three, the third sleeps on
    assert event.get() == 0
    assert event.wakeup() is True
    assert released_becomes(3) == 3
    assert [reap(pid) for pid in pids] == [0, 0, 0]


FAMILY = """
import json, os, sys, time
from pyswoole import Process, Server
from pyswoole.process import Pool
from pyswoole.shm import Atomic, Lock, Table

PER_PROCESS, TASKS = 1000, 20
table = Table(8)
table.column("hits", Table.TYPE_INT)
table.column("pids", Table.TYPE_STRING, 256)
table.create()  # before any fork: every process below shares it
lock, pool_workers = Lock(), Atomic()


def record(kind):
    for _ in range(PER_PROCESS):
        table.incr(kind, "hits")
    with lock:
        pids = table.get(kind, "pids")
        table.set(kind, {"pids": f"{pids} {os.getpid()}".strip()})


children = [Process(lambda process: record("process"), pipe_type=Process.PIPE_NONE) for _ in range(2)]
for child in children:
    child.start()
for _ in children:
    Process.wait()

pool = Pool(3)


@pool.on("worker_start")
def pool_worker(pool, worker_id):
    record("pool")
    if pool_workers.add(1) == 3:
        pool.shutdown()
    time.sleep(60)


pool.start()
server = Server("127.0.0.1", int(sys.argv[1]))
server.set({"worker_num": 1, "task_worker_num": 2})


@server.on("worker_start")
def worker_start(server, worker_id):
    if not server.taskworker:
        for i in range(TASKS):
            server.task(i)


@server.on("task")
def on_task(server, task_id, src_worker_id, data):
    record("task")
    return True


finished = []


@server.on("finish")
def on_finish(server, task_id, result):
    finished.append(task_id)
    if len(finished) == TASKS:  # once: a second shutdown() would force the stop
        assert table.get("task", "hits") == TASKS * PER_PROCESS  # task workers' writes, read here
        server.shutdown()


server.on("receive", lambda *args: None)
server.start()
print(json.dumps(dict(iter(table))))
"""


def test_processes_pool_workers_and_task_workers_share_one_table():
    script = subprocess.Popen(
        [sys.executable, "-c", FAMILY, str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,  # its own process group: killed whole if it hangs
    )
    try:
        out, err = script.communicate(timeout=60)
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait()
    assert script.returncode == 0, err
    rows = json.loads(out)
    assert {kind: row["hits"] for kind, row in rows.items()} == {"process": 2000, "pool": 3000, "task": 20000}
    pids = {kind: row["pids"].split() for kind, row in rows.items()}
    assert len(set(pids["process"])) == 2 and len(set(pids["pool"])) == 3
    assert len(pids["task"]) == 20 and 1 <= len(set(pids["task"])) <= 2
