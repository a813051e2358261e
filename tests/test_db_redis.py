"""Redis pools against a private redis-server (see tests/db_servers.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import pytest
import uvloop
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from pyswoole.db import redis_pool
from pyswoole.pool import PoolTimeoutError

pytest_plugins = ["tests.db_servers"]


def run(coro: Awaitable[Any], timeout: float = 20) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(bounded())


async def connected_clients(admin: Redis) -> int:
    return int((await admin.info("clients"))["connected_clients"])


def test_pool_basics_and_bounded_connections(redis_server: Any) -> None:
    async def main() -> None:
        admin = Redis.from_url(redis_server.url, single_connection_client=True)
        baseline = await connected_clients(admin)
        pool = redis_pool(redis_server.url, size=5, decode_responses=True)
        async with pool.acquire() as client:
            await client.set("greeting", "hello")
            assert await client.get("greeting") == "hello"

        peak = baseline

        async def worker(n: int) -> int:
            nonlocal peak
            async with pool.acquire() as client:
                value = await client.incr("counter")
                peak = max(peak, await connected_clients(admin))
                await client.rpush("seen", n)
                return value

        values = await asyncio.gather(*(worker(n) for n in range(100)))
        assert sorted(values) == list(range(1, 101))
        assert sorted(int(n) for n in await admin.lrange("seen", 0, -1)) == list(range(100))
        assert baseline < peak <= baseline + 5
        stats = pool.stats()
        assert (stats["created"], stats["idle"], stats["in_use"]) == (5, 5, 0)
        await pool.close()
        async with asyncio.timeout(2):
            while await connected_clients(admin) != baseline:
                await asyncio.sleep(0.01)
        await admin.flushall()
        await admin.aclose()

    run(main())


def test_exhausted_redis_pool_raises_after_acquire_timeout(redis_server: Any) -> None:
    async def main() -> None:
        pool = redis_pool(redis_server.url, size=1, acquire_timeout=0.2)
        held = await pool.get()
        started = time.monotonic()
        with pytest.raises(PoolTimeoutError):
            await pool.get()
        assert 0.18 <= time.monotonic() - started < 1.0
        pool.put(held)
        await pool.close()

    run(main())


def test_pooled_client_reconnects_after_the_server_restarts(redis_server: Any) -> None:
    async def main() -> None:
        pool = redis_pool(redis_server.url, size=2)
        async with pool.acquire() as client:
            assert await client.ping()
            before = await client.client_id()
        await asyncio.to_thread(redis_server.restart)
        async with pool.acquire() as client:  # the same pooled client: one reconnect, one retry
            await client.set("after", "restart")
            assert await client.get("after") == b"restart"
            assert await client.client_id() != before
        assert pool.stats()["created"] == 1
        await pool.close()

    run(main())


def test_server_down_raises_then_the_pool_recovers(redis_server: Any) -> None:
    async def main() -> None:
        pool = redis_pool(redis_server.url, size=1)
        async with pool.acquire() as client:
            await client.ping()
        await asyncio.to_thread(redis_server.stop)
        try:
            with pytest.raises(RedisConnectionError):
                async with pool.acquire() as client:
                    await client.ping()
            assert pool.stats()["closed"] == 1  # the failed client was discarded
            with pytest.raises(RedisConnectionError):
                await pool.get()  # a new one cannot connect either
        finally:
            await asyncio.to_thread(redis_server.start)
        async with pool.acquire() as client:
            assert await client.ping()
        await pool.close()

    run(main())


def test_killed_idle_client_is_pinged_and_usable(redis_server: Any) -> None:
    async def main() -> None:
        admin = Redis.from_url(redis_server.url, single_connection_client=True)
        pool = redis_pool(redis_server.url, size=1, min_idle=1, max_idle_time=0.05)
        async with pool.acquire() as client:
            first_id = await client.client_id()
        await admin.client_kill_filter(_id=first_id)
        await asyncio.sleep(0.1)
        async with pool.acquire() as client:
            assert await client.client_id() != first_id
        await pool.close()
        await admin.aclose()

    run(main())
