"""Callbacks that use asyncio libraries from their very first line (before any suspension).

Usage: asyncio_libs_server.py PORT REDIS_URL. Commands: ``timeout`` (asyncio.timeout that
expires), ``redis KEY VALUE`` (redis-py asyncio SET + GET), ``group`` (asyncio.TaskGroup).
"""

import asyncio
import sys

import redis.asyncio as aioredis

from pyswoole import BASE, Server

server = Server("127.0.0.1", int(sys.argv[1]), mode=BASE)
server.set({"worker_num": 1})
client = None


@server.on("receive")
async def on_receive(server, fd, reactor_id, data):
    global client
    command, *args = data.decode().split()
    if command == "timeout":
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(5)
            reply = "not timed out"
        except TimeoutError:
            reply = "timed out"
    elif command == "redis":
        if client is None:
            client = aioredis.from_url(sys.argv[2])
        await client.set(args[0], args[1])
        reply = (await client.get(args[0])).decode()
    elif command == "group":
        async with asyncio.TaskGroup() as group:
            first = group.create_task(asyncio.sleep(0.01, "a"))
            second = group.create_task(asyncio.sleep(0.02, "b"))
        reply = first.result() + second.result()
    else:
        reply = "?"
    server.send(fd, reply)


server.start()
