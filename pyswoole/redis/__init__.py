"""A server that speaks the Redis protocol (Swoole's ``Swoole\\Redis\\Server``). See ``docs/redis.md``."""

from pyswoole.protocol.resp import Reply, ReplyError
from pyswoole.redis.server import ERROR, INT, MAP, NIL, SET, STATUS, STRING, RedisConnection, Server

__all__ = [
    "ERROR",
    "INT",
    "MAP",
    "NIL",
    "SET",
    "STATUS",
    "STRING",
    "RedisConnection",
    "Reply",
    "ReplyError",
    "Server",
]
