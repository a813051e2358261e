"""The WebSocket examples run for real: websocket.py, swoole_ws.py, workerman_ws.py and demo.py."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from helpers import EXAMPLES, free_port, port_open

from pyswoole.websocket import connect


def start_example(run_server, name: str) -> tuple[int, object]:
    port = free_port()
    server = run_server(
        [EXAMPLES / name, "--host", "127.0.0.1", "--port", port], ready=lambda: port_open(port)
    )
    return port, server


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 15))


def test_websocket_example(run_server):
    port, server = start_example(run_server, "websocket.py")
    base = f"http://127.0.0.1:{port}"

    async def main():
        async with await connect(f"ws://127.0.0.1:{port}/?a=1") as ws:
            assert await ws.recv() == "Hello, welcome\n"
            await ws.send("abc")
            assert await ws.recv() == "Server：abc"
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"{base}/favicon.ico")).status_code == 404
                reply = await http.get(f"{base}/", params={"message": "hey"})
                assert reply.text == "hey"
                assert await ws.recv() == "hey"  # nothing came from the favicon request
                page = await http.get(f"{base}/")
                assert "new WebSocket(" in page.text and "websocket.onopen" not in page.text

    run(main())
    output = server.wait_output("连接关闭：", count=2)
    assert "建立连接：" in output and "{'a': '1'}" in output
    assert "接收数据： abc" in output


def test_swoole_ws_chat_crosses_workers_and_keeps_the_400_page(run_server):
    port, _ = start_example(run_server, "swoole_ws.py")

    async def main():
        a = await connect(f"ws://127.0.0.1:{port}/")
        b = await connect(f"ws://127.0.0.1:{port}/")
        await a.send("hi")
        lines = {await a.recv(), await b.recv()}
        assert len(lines) == 1 and lines.pop().endswith(": hi")
        await b.send("")
        first, second = await a.recv(), await b.recv()
        assert first == second and first.startswith("Client-") and first.endswith(": ")
        await a.close()
        await b.close()

    run(main())
    page = httpx.get(f"http://127.0.0.1:{port}/")
    assert page.status_code == 200 and "Swoole聊天程序" in page.text and "cdn" not in page.text
    other = httpx.get(f"http://127.0.0.1:{port}/other")
    assert other.status_code == 400 and "Powered by Swoole" in other.text


def _descendants(pid: int) -> list[int]:
    """Children, grandchildren, ... of ``pid`` (from /proc/<pid>/task/*/children: cheap to poll)."""
    found, pending = [], [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            pending += children
    return found


def _commands_seen(server_pid: int, seconds: float, stop_at: int = 0) -> int:
    """How many times, polling for ``seconds`` (or until ``stop_at`` sightings), an uptime/free/df
    child of the server was running."""
    deadline = time.monotonic() + seconds
    seen = 0
    while time.monotonic() < deadline and not (stop_at and seen >= stop_at):
        for pid in _descendants(server_pid):
            try:
                seen += Path(f"/proc/{pid}/comm").read_text().strip() in ("uptime", "free", "df")
            except OSError:
                continue
        time.sleep(0.0005)
    return seen


def test_workerman_ws_pushes_stats_every_second_and_stops_on_close(run_server):
    port, server = start_example(run_server, "workerman_ws.py")

    async def main():
        async with await connect(f"ws://127.0.0.1:{port}/", compression=False) as ws:
            started = time.monotonic()
            first = await ws.recv()
            assert 0.8 < time.monotonic() - started < 3  # the first tick comes after 1 s
            stats = json.loads(first)
            assert set(stats) == {"load", "memory", "disk"}
            assert "load average" in stats["load"][0]
            assert stats["memory"][1].startswith("Mem:") and stats["disk"][0].startswith("Filesystem")
            assert "\\/" in first and all(line == line.rstrip() for line in stats["disk"])
            second = json.loads(await ws.recv())
            assert second["load"] != stats["load"]  # a fresh sample (uptime shows the time)
            await ws.send("ignored")
            busy = await asyncio.to_thread(_commands_seen, server.pid, 5.0, 1)
        return busy

    busy = run(main())
    assert busy > 0  # the sampling sees the commands while a client is connected
    time.sleep(1.0)  # the commands of a tick already under way finish
    assert _commands_seen(server.pid, 2.5) == 0  # ... and none once it has gone: timer cleared


def test_demo_runs_chat_and_stats_on_one_port(run_server):
    port, server = start_example(run_server, "demo.py")

    async def main():
        chat = [await connect(f"ws://127.0.0.1:{port}/") for _ in range(2)]
        stats = await connect(f"ws://127.0.0.1:{port}/stats")
        await chat[0].send("<i>hello</i>")
        lines = {await c.recv() for c in chat}
        assert len(lines) == 1 and lines.pop().endswith(": <i>hello</i>")
        await stats.send("not for the chat")
        sample = json.loads(await stats.recv())  # the statistics socket gets only statistics
        assert set(sample) == {"load", "memory", "disk"}
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(chat[1].recv(), 0.3)
        for ws in (*chat, stats):
            await ws.close()

    run(main())
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        assert "Swoole聊天程序" in http.get("/").text
        assert "系统状态实时统计" in http.get("/stats").text
        assert http.get("/nothing").status_code == 404
    assert f"statistics: http://127.0.0.1:{port}/stats" in server.wait_output("statistics")
