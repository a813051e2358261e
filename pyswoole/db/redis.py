"""Redis on redis-py's asyncio client: a pool of single-connection clients.

Each pooled item is a ``redis.asyncio.Redis`` bound to one connection, so the pool's ``size`` is the
number of connections to the server. After a disconnect (a restarted server, an idle connection the
server dropped) a command reconnects once and is retried once by redis-py's own ``Retry``; as with
MySQL, a command whose reply was lost may have been applied, so a non-idempotent command (INCR,
LPUSH, ...) can run twice. Pass ``retry=Retry(NoBackoff(), 0)`` to turn retrying off.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from pyswoole.pool import ConnectionPool

__all__ = ["redis_pool"]


async def _ping(client: Redis) -> bool:
    return bool(await client.ping())


def redis_pool(
    url: str = "redis://127.0.0.1:6379/0",
    size: int = 64,
    *,
    min_idle: int = 0,
    max_idle_time: float = 60,
    max_lifetime: float | None = None,
    acquire_timeout: float = 5,
    **options: Any,
) -> ConnectionPool[Redis]:
    """A pool of up to ``size`` connected ``Redis`` clients for ``url``; ``options`` go to
    ``Redis.from_url`` (``socket_timeout``, ``decode_responses``, ``retry``, ...)."""
    options.setdefault("retry", Retry(NoBackoff(), 1))

    async def factory() -> Redis:
        client = Redis.from_url(url, single_connection_client=True, **options)
        try:
            return await client.initialize()  # opens the connection now, not at the first command
        except BaseException:
            await client.aclose()
            raise

    return ConnectionPool(
        factory,
        size,
        min_idle=min_idle,
        max_idle_time=max_idle_time,
        max_lifetime=max_lifetime,
        ping=_ping,
        acquire_timeout=acquire_timeout,
        close=Redis.aclose,
    )
