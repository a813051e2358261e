"""Database clients for coroutines: long MySQL connections that reconnect, and connection pools.

See docs/db.md. ``redis_pool`` is imported on first use, so MySQL users never load redis-py.
"""

from typing import Any

from pyswoole.db.mysql import (
    DISCONNECT_ERRORS,
    BlockingMySQLConnection,
    MySQLConnection,
    is_disconnect,
    mysql_pool,
)

__all__ = [
    "DISCONNECT_ERRORS",
    "BlockingMySQLConnection",
    "MySQLConnection",
    "is_disconnect",
    "mysql_pool",
    "redis_pool",
]


def __getattr__(name: str) -> Any:
    if name == "redis_pool":
        from pyswoole.db.redis import redis_pool

        return redis_pool
    raise AttributeError(f"module 'pyswoole.db' has no attribute {name!r}")
