"""Task workers with real processes: results routed home, failures reported, nothing lost."""

import json
import socket

from helpers import APPS, free_port, port_open, recv_until, wait_for

APP = APPS / "task_server.py"


def start(run_server, settings=None):
    port = free_port()
    argv = [APP, port] + ([json.dumps(settings)] if settings else [])
    server = run_server(argv, ready=lambda: port_open(port))
    server.port = port
    return server


def ask(port, command, timeout=10.0, until=None):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(command)
        return recv_until(sock, until or (lambda d: len(d) > 0), timeout=timeout)


def test_task_finish_taskwait_multi_and_co(run_server):
    server = start(run_server)
    assert ask(server.port, b"echo hi") == b"0"
    out = server.wait_output("finish")
    assert "'echo': 'hi'" in out
    assert json.loads(ask(server.port, b"wait blocking"))["echo"] == "blocking"
    assert json.loads(ask(server.port, b"await coro"))["echo"] == "coro"
    assert json.loads(ask(server.port, b"multi 4")) == [0, 1, 2, 3]
    # task_co: results in order, the one that outlives the timeout is False
    assert json.loads(ask(server.port, b"co 3")) == [0, 1, 2, False]


def test_gc_settings_apply_in_task_workers(run_server):
    server = start(run_server, {"gc_threshold": 3000})
    state = json.loads(ask(server.port, b"gc"))
    assert state["threshold"][0] == 3000 and state["frozen"] > 1000


def test_crashing_and_raising_tasks_are_reported(run_server):
    server = start(run_server)
    reply = ask(server.port, b"crash").decode()
    assert reply.startswith("TaskError") and "died with code 3" in reply
    server.wait_output("worker_error")
    assert "ValueError: task failed on purpose" in ask(server.port, b"raise").decode()
    # the respawned task worker serves again
    assert json.loads(ask(server.port, b"wait again"))["echo"] == "again"


def test_ten_thousand_tasks_none_lost_results_to_the_right_worker(run_server):
    server = start(run_server)
    assert (
        ask(server.port, b"flood 10000", timeout=60, until=lambda d: d.startswith(b"flood_done"))
        == b"flood_done 10000"
    )
    assert "AssertionError" not in server.output()


def test_large_payload_round_trip(run_server):
    server = start(run_server)
    assert json.loads(ask(server.port, b"big 64", timeout=60)) == [64 * 1024 * 1024, True]


def test_queue_bound_refuses_instead_of_dropping(run_server):
    server = start(run_server, {"task_worker_num": 1, "task_queue_size": 2})
    assert ask(server.port, b"slow 1") == b"0"
    assert ask(server.port, b"slow 0.1") in (b"0", b"1")
    replies = [ask(server.port, b"slow 0.1") for _ in range(3)]
    assert b"False" in replies
    assert "task refused" in server.output()


def test_queued_tasks_survive_a_task_worker_reload(run_server):
    import signal

    server = start(run_server, {"task_worker_num": 1})
    for _ in range(5):  # one runs, four wait in the manager's queue
        assert ask(server.port, b"slow 0.3").isdigit()
    server.signal(signal.SIGUSR2)  # task workers only
    wait_for(lambda: server.output().count("finish") >= 5, 20)
    assert "TaskError" not in server.output()


COROUTINE_TASKS = """
import asyncio, os, sys
from pyswoole import Server
server = Server("127.0.0.1", int(sys.argv[1]))
server.set({"worker_num": 1, "task_worker_num": 1, "task_enable_coroutine": True, "task_max_request": 2})

@server.on("task")
async def on_task(server, task):
    await asyncio.sleep(0.01)
    task.finish({"id": task.id, "from": task.worker_id, "data": task.data, "pid": os.getpid()})

@server.on("receive")
async def on_receive(server, fd, reactor_id, data):
    result = await server.taskwait(data.decode(), 5)
    server.send(fd, f"{result['data']} {result['id']} {result['from']} {result['pid']}")

server.start()
"""


def test_task_enable_coroutine_and_task_max_request(run_server):
    port = free_port()
    run_server(["-c", COROUTINE_TASKS, port], ready=lambda: port_open(port))
    replies = [ask(port, f"job{i}".encode()).decode().split() for i in range(5)]
    assert [r[0] for r in replies] == [f"job{i}" for i in range(5)]
    assert [int(r[1]) for r in replies] == list(range(5))  # task ids count from 0 in the worker
    assert {r[2] for r in replies} == {"0"}  # the dispatching worker's id
    pids = [r[3] for r in replies]
    assert pids[0] == pids[1] and pids[1] != pids[2]  # task_max_request 2: a fresh task worker


PAYLOADS = """
import asyncio, json, sys, time
from pyswoole import Server
server = Server("127.0.0.1", int(sys.argv[1]))
server.set({"worker_num": 1, "task_worker_num": 2})
PAYLOADS = [b"", b"raw \\x00\\xff", bytes(range(256)) * 1024, "", "h\\u00e9llo \\u2713", "lone \\udc80 surrogate",
            "x" * 200_000, 7, ["a", b"b"], None]

@server.on("task")
async def on_task(server, task_id, src_worker_id, data):
    if data == "later":  # suspends: the task worker waits for it before its next task
        await asyncio.sleep(0.01)
    if isinstance(data, str) and data.startswith("sleep "):
        await asyncio.sleep(float(data.split()[1]))
    return [server.worker_id, data] if data in ("now", "later") else data

@server.on("receive")
def on_receive(server, fd, reactor_id, data):
    if data == b"blocking":
        got = [server.taskwait(p, 5, i % 2) for i, p in enumerate(PAYLOADS)]
        server.send(fd, json.dumps([type(g) is type(p) and g == p for g, p in zip(got, PAYLOADS)]))
        return None
    return coroutine(fd, data.decode())

async def coroutine(fd, command):
    if command == "timeouts":  # a short wait that starts after a long one still ends on time
        start = time.monotonic()
        long_wait = asyncio.ensure_future(server.taskwait("sleep 1", 10, 0))
        short = await server.taskwait("sleep 1", 0.2, 1)
        short_seconds = time.monotonic() - start
        server.send(fd, json.dumps([short, short_seconds, await long_wait]))
    elif command == "await":
        got = [await server.taskwait(p, 5, i % 2) for i, p in enumerate(PAYLOADS)]
        server.send(fd, json.dumps([type(g) is type(p) and g == p for g, p in zip(got, PAYLOADS)]))
    else:  # "now" or "later", on each task worker (dst_worker_id), and task_co's results in order
        got = [await server.taskwait(command, 5, dst) for dst in (0, 1)]
        server.send(fd, json.dumps(got + await server.task_co(["a", "b", 3], 5) + await server.task_co([], 1)))

server.start()
"""


def test_payloads_keep_their_type_and_async_tasks_run_in_place_or_suspend(run_server):
    """bytes and str travel without pickle, anything else pickled; every one comes back as it went."""
    port = free_port()
    run_server(["-c", PAYLOADS, port], ready=lambda: port_open(port))
    assert json.loads(ask(port, b"blocking", timeout=30)) == [True] * 10
    assert json.loads(ask(port, b"await", timeout=30)) == [True] * 10
    # worker ids of task workers count after the workers: worker_num 1 -> task workers 1 and 2
    assert json.loads(ask(port, b"now")) == [[1, "now"], [2, "now"], "a", "b", 3]
    assert json.loads(ask(port, b"later")) == [[1, "later"], [2, "later"], "a", "b", 3]
    short, short_seconds, long = json.loads(ask(port, b"timeouts"))
    assert short is False and 0.15 < short_seconds < 0.9 and long == "sleep 1"
