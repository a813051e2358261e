"""Port of ``co_setDefer.php`` (a comments-only file in the seed): send now, receive later.

Swoole's coroutine clients have ``setDefer()``: a request is sent at once and its reply is
collected later with ``recv()``, so several requests to different backends overlap instead of
queueing. In Python the coroutine ``Client``'s ``send`` and ``recv`` are already separate calls:
send every request first, then receive every reply. This script starts two slow backends of its
own (each answers after ``--delay`` seconds), asks both one after the other, then both deferred,
and prints the times: about 2 x delay against about 1 x delay.

Run: ``python3 examples/co_setDefer.py [--host 127.0.0.1] [--port 9501] [--delay 0.5]``
(the backends listen on ``--port`` and ``--port + 1``).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from pyswoole import coroutine as co


async def slow_backend(host: str, port: int, name: str, delay: float) -> asyncio.AbstractServer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            await asyncio.sleep(delay)
            writer.write(f"{name}: {data.decode()}".encode())
        writer.close()

    return await asyncio.start_server(answer, host, port)


async def ask_in_turn(clients: list[co.Client]) -> list[bytes]:
    replies = []
    for client in clients:
        await client.send(b"query")
        replies.append(await client.recv(timeout=10))
    return replies


async def ask_deferred(clients: list[co.Client]) -> list[bytes]:
    for client in clients:  # every request leaves now ...
        await client.send(b"query")
    return [await client.recv(timeout=10) for client in clients]  # ... the replies are collected later


async def main(host: str, port: int, delay: float) -> None:
    backends = [await slow_backend(host, port + i, name, delay) for i, name in enumerate(("mysql", "redis"))]
    clients = [co.Client() for _ in backends]
    for i, client in enumerate(clients):
        assert await client.connect(host, port + i, timeout=5)
    for label, ask in (("one after the other", ask_in_turn), ("deferred", ask_deferred)):
        started = time.monotonic()
        replies = await ask(clients)
        print(f"{label}: {[r.decode() for r in replies]} in {time.monotonic() - started:.2f} s", flush=True)
    for client in clients:
        client.close()
    for backend in backends:
        backend.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--delay", type=float, default=0.5)
    args = parser.parse_args()
    co.run(main, args.host, args.port, args.delay)
