"""Pools inside a real pyswoole Server: one pool per worker, coroutine callbacks answered concurrently."""

from __future__ import annotations

import json
import socket
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from helpers import ROOT, free_port

pytest_plugins = ["tests.db_servers"]

SERVER = textwrap.dedent(
    """
    import json, os, sys
    from pyswoole import Server
    from pyswoole.db import mysql_pool

    port, mysql_port = int(sys.argv[1]), int(sys.argv[2])
    server = Server("127.0.0.1", port)
    server.set({"worker_num": 2})
    pool = mysql_pool("127.0.0.1", mysql_port, "root", "", "test", size=10)  # before the fork: empty

    @server.on("receive")
    async def receive(server, fd, reactor_id, data):
        async with pool.acquire() as conn:
            rows = await conn.query("SELECT SLEEP(%s) AS slept, CONNECTION_ID() AS id", [float(data)])
        reply = {"pid": os.getpid(), "connection": rows[0]["id"], "created": pool.stats()["created"]}
        server.send(fd, json.dumps(reply).encode() + b"\\n")

    server.start()
    """
)


def ask(port: int, seconds: float) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(str(seconds).encode())
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(4096)
            assert chunk, "server closed the connection"
            reply += chunk
    return json.loads(reply)


def answers(port: int, warm: set[int]) -> bool:
    """Ready: this server (not just anything on the port) answers a query; notes its connection."""
    try:
        warm.add(ask(port, 0)["connection"])
    except (OSError, ValueError):
        return False
    return True


def test_twenty_slow_queries_on_two_workers_run_concurrently(
    mariadb: Any, run_server: Any, tmp_path: Path
) -> None:
    script = tmp_path / "db_server.py"
    script.write_text(SERVER)
    port = free_port()
    warm: set[int] = set()
    env = {"PYTHONPATH": str(ROOT)}  # the script lives elsewhere: import this tree's pyswoole
    server = run_server([script, port, mariadb.port], ready=lambda: answers(port, warm), env=env)
    before = int(mariadb.query("SHOW GLOBAL STATUS LIKE 'Connections'")[0][1])
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(20) as executor:
            replies = list(executor.map(lambda _: ask(port, 0.5), range(20)))
    except OSError as exc:
        raise AssertionError(f"{exc!r}; server output:\n{server.output()}") from exc
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, f"20 queries of SLEEP(0.5) took {elapsed:.2f} s"
    pids = {reply["pid"] for reply in replies}
    for pid in pids:  # each worker opened its own connections, at most its pool's size
        mine = {reply["connection"] for reply in replies if reply["pid"] == pid}
        assert len(mine) <= max(reply["created"] for reply in replies if reply["pid"] == pid) <= 10
        assert not mine & {reply["connection"] for reply in replies if reply["pid"] != pid}
    opened = int(mariadb.query("SHOW GLOBAL STATUS LIKE 'Connections'")[0][1]) - before - 1  # minus our query
    assert opened == len({reply["connection"] for reply in replies} - warm)
    assert "Traceback" not in server.output()
