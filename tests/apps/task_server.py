"""Task-worker test server. Usage: task_server.py PORT [SETTINGS_JSON].

Commands (one per chunk): ``echo X`` (task, result via finish), ``wait X`` (blocking taskwait),
``await X`` (taskwait from a coroutine), ``multi N``, ``co N``, ``crash`` (the task worker dies),
``raise``, ``flood N`` (N tasks; prints ``flood_done`` when every result came back to this
worker), ``big MIB`` (round trip of a MIB-sized payload), ``slow SECONDS``.
"""

import gc
import json
import os
import sys
import time

from pyswoole import Server

port = int(sys.argv[1])
settings = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
server = Server("127.0.0.1", port)
server.set({"worker_num": 2, "task_worker_num": 2, **settings})
flood = {"expected": 0, "got": 0, "fd": 0}


def say(*parts):
    """One line in one write: several processes share the output file."""
    sys.stdout.write(" ".join(map(str, parts)) + "\n")
    sys.stdout.flush()


@server.on("task")
def on_task(server, task_id, src_worker_id, data):
    op = data["op"]
    if op == "crash":
        os._exit(3)
    if op == "raise":
        raise ValueError("task failed on purpose")
    if op == "slow":
        time.sleep(data["seconds"])
    if op == "gc":
        return {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
    if op == "big":
        return {"size": len(data["payload"]), "tail": data["payload"][-4:], "back": data["payload"]}
    return {"echo": data.get("value"), "src": src_worker_id, "task_worker": server.worker_id, "op": op}


@server.on("finish")
def on_finish(server, task_id, result):
    if isinstance(result, dict) and result.get("op") == "flood":
        assert result["src"] == server.worker_id, (result, server.worker_id)
        flood["got"] += 1
        if flood["got"] == flood["expected"]:
            say("flood_done", server.worker_id, flood["got"])
            server.send(flood["fd"], f"flood_done {flood['got']}")
        return
    say("finish", server.worker_id, task_id, repr(result))


@server.on("worker_error")
def on_worker_error(server, worker_id, worker_pid, exit_code, signal):
    say("worker_error", worker_id, exit_code, signal)


@server.on("receive")
def on_receive(server, fd, reactor_id, data):
    """Plain function: taskwait and task_wait_multi block here; other commands run as coroutines."""
    command, *args = data.decode().split()
    if command == "echo":
        server.send(fd, str(server.task({"op": "echo", "value": args[0]})))
    elif command == "wait":
        server.send(fd, json.dumps(server.taskwait({"op": "wait", "value": args[0]}, 5)))
    elif command == "multi":
        results = server.task_wait_multi([{"op": "multi", "value": i} for i in range(int(args[0]))], 5)
        server.send(fd, json.dumps(sorted(r["echo"] for r in results.values())))
    elif command == "gc":
        server.send(fd, json.dumps(server.taskwait({"op": "gc"}, 5)))
    elif command == "raise":
        try:
            server.taskwait({"op": "raise"}, 5)
        except Exception as exc:
            server.send(fd, f"{type(exc).__name__}: {exc}")
    else:
        return run_async(server, fd, command, args)  # a coroutine: the server runs it
    return None


async def run_async(server, fd, command, args):
    if command == "await":
        server.send(fd, json.dumps(await server.taskwait({"op": "await", "value": args[0]}, 5)))
    elif command == "co":
        jobs = [{"op": "co", "value": i} for i in range(int(args[0]))]
        jobs.append({"op": "slow", "seconds": 3})
        results = await server.task_co(jobs, 1.5)
        server.send(fd, json.dumps([r["echo"] if r else r for r in results]))
    elif command == "crash":
        try:
            await server.taskwait({"op": "crash"}, 5)
        except Exception as exc:
            server.send(fd, f"{type(exc).__name__}: {exc}")
    elif command == "flood":
        flood.update(expected=int(args[0]), got=0, fd=fd)
        for i in range(flood["expected"]):
            assert server.task({"op": "flood", "value": i}) is not False
    elif command == "big":
        payload = os.urandom(16) * (int(args[0]) * 65536)
        result = await server.taskwait({"op": "big", "payload": payload}, 30)
        server.send(fd, json.dumps([result["size"], result["back"] == payload]))
    elif command == "slow":
        server.send(fd, str(server.task({"op": "slow", "seconds": float(args[0])})))


server.start()
