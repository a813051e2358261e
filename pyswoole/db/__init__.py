"""Database clients for coroutines: long MySQL connections that reconnect, and connection pools.

See docs/db.md.
"""

from pyswoole.db.mysql import (
    DISCONNECT_ERRORS,
    BlockingMySQLConnection,
    MySQLConnection,
    is_disconnect,
    mysql_pool,
)
from pyswoole.db.redis import redis_pool

__all__ = [
    "DISCONNECT_ERRORS",
    "BlockingMySQLConnection",
    "MySQLConnection",
    "is_disconnect",
    "mysql_pool",
    "redis_pool",
]
