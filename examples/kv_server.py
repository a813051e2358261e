"""A small Redis-compatible key-value server whose data every worker process sees.

Run: ``python3 examples/kv_server.py [--host 0.0.0.0] [--port 6380] [--workers N] [--rows 65536]
[--value-size 1024]``, then use any Redis client: ``redis-cli -p 6380``, redis-py, redis-benchmark.

Commands, with Redis's replies and error texts (wrong arity, wrong type, not an integer, syntax):
``PING [message]``, ``ECHO``, ``GET``, ``SET key value [NX|XX] [EX seconds|PX milliseconds]``,
``DEL``, ``EXISTS``, ``INCR``, ``INCRBY``, ``DECR``, ``MGET``, ``MSET``,
``EXPIRE key seconds [NX|XX|GT|LT]``, ``TTL``, ``KEYS pattern``, ``DBSIZE``, ``FLUSHDB [ASYNC|SYNC]``,
``HSET key field value [field value ...]``, ``HGET``, ``HGETALL``, ``QUIT``, and ``INFO`` (its
``server`` section: ``process_id`` tells which worker answered). ``HELLO 3`` switches to RESP3.
There are no transactions (``MULTI``/``EXEC``): use redis-py's ``pipeline(transaction=False)``.

The data lives in one shared-memory ``pyswoole.shm.Table`` made before the workers fork, so every
worker (and every connection, whichever worker serves it) sees the same keys. Reads take no lock;
every write holds one process-shared ``Lock``, so commands never interleave halfway (INCR is
atomic, SET NX is a real test-and-set). Expired keys are removed when they are next touched.

Limits of this store (Redis has none of them):

- a key is at most 63 bytes (``Table.KEY_MAX``): a longer one gets ``ERR key is longer than 63 bytes``;
- a value, or a whole hash (its fields and values, serialised), is at most ``--value-size`` bytes
  (1024 by default): a longer one gets ``ERR value is longer than 1024 bytes``;
- at most ``--rows`` keys (65536 by default); one more gets Redis's out-of-memory error
  ``OOM command not allowed when used memory > 'maxmemory'.``. The table takes about
  ``rows * (value-size + 100)`` bytes of shared memory.
"""

from __future__ import annotations

import argparse
import marshal
import os
import re
import time

from pyswoole.redis import Reply, ReplyError, Server
from pyswoole.shm import Lock, Table, TableFullError

STRING_TYPE = 1
HASH_TYPE = 2
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

OK = Reply(b"+OK\r\n")
PONG = Reply(b"+PONG\r\n")
WRONGTYPE = ReplyError("WRONGTYPE Operation against a key holding the wrong kind of value")
NOT_INTEGER = ReplyError("ERR value is not an integer or out of range")
SYNTAX = ReplyError("ERR syntax error")
OVERFLOW = ReplyError("ERR increment or decrement would overflow")
OUT_OF_MEMORY = ReplyError("OOM command not allowed when used memory > 'maxmemory'.")


def arity(command: str) -> ReplyError:
    return ReplyError(f"ERR wrong number of arguments for '{command}' command")


def expire_time(command: str) -> ReplyError:
    return ReplyError(f"ERR invalid expire time in '{command}' command")


def to_int(value: bytes) -> int:
    """A 64-bit integer spelt exactly as Redis accepts it (no sign +, spaces, leading zeros or
    ``_``: the canonical decimal form), else the not-an-integer error."""
    try:
        number = int(value)
    except ValueError:
        raise NOT_INTEGER from None
    if b"%d" % number != value or not INT64_MIN <= number <= INT64_MAX:
        raise NOT_INTEGER
    return number


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def glob_to_regex(pattern: bytes) -> re.Pattern[bytes]:
    """Redis's glob (``*``, ``?``, ``[abc]``, ``[^a-z]``, ``\\x``) as an anchored regex."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        if c == b"*":
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i : i + 1]))
        elif c == b"[":
            end = pattern.find(b"]", i + 1)
            if end < 0:  # no "]": the class runs to the end of the pattern, as in Redis
                end = n
            body = pattern[i + 1 : end]
            negate = body.startswith(b"^")
            body = body[1:] if negate else body
            chars = re.sub(rb"([\\\]\[^])", rb"\\\1", body)
            out.append(b"[" + (b"^" if negate else b"") + chars + b"]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile(b"".join(out), re.DOTALL)


class Store:
    """Keys in a shared Table: a type, an expiry (ms since the epoch, 0 for none) and a value."""

    def __init__(self, rows: int, value_size: int):
        self.value_size = value_size
        self.table = Table(rows)
        self.table.column("type", Table.TYPE_INT)
        self.table.column("expire", Table.TYPE_INT)
        self.table.column("value", Table.TYPE_STRING, value_size)
        self.table.create()
        self.lock = Lock()

    # -- rows -------------------------------------------------------------------------------------
    def row(self, key: bytes, locked: bool = False) -> dict | None:
        """The live row of ``key`` (an expired one is removed; ``locked``: the caller holds the lock)."""
        try:
            row = self.table.get(key)
        except ValueError:  # a key longer than the table takes cannot be there
            return None
        if row is None:
            return None
        expire = row["expire"]
        if expire and expire <= now_ms():
            if locked:
                self.table.delete(key)
            else:
                with self.lock:
                    current = self.table.get(key)
                    if current is not None and current["expire"] == expire:
                        self.table.delete(key)
            return None
        return row

    def write(self, key: bytes, values: dict) -> None:
        if len(key) > Table.KEY_MAX:
            raise ReplyError(f"ERR key is longer than {Table.KEY_MAX} bytes")
        value = values.get("value")
        if value is not None and len(value) > self.value_size:
            raise ReplyError(f"ERR value is longer than {self.value_size} bytes")
        try:
            self.table.set(key, values)
        except TableFullError:
            raise OUT_OF_MEMORY from None

    def hash(self, key: bytes, locked: bool = False) -> dict[bytes, bytes]:
        row = self.row(key, locked)
        if row is None:
            return {}
        if row["type"] != HASH_TYPE:
            raise WRONGTYPE
        return marshal.loads(row["value"])

    def live_keys(self) -> list[bytes]:
        now = now_ms()
        return [key for key, row in self.table if not row["expire"] or row["expire"] > now]

    # -- commands ---------------------------------------------------------------------------------
    def ping(self, server, fd, args):
        if not args:
            return PONG
        if len(args) > 1:
            raise arity("ping")
        return args[0]

    def echo(self, server, fd, args):
        if len(args) != 1:
            raise arity("echo")
        return args[0]

    def get(self, server, fd, args):
        if len(args) != 1:
            raise arity("get")
        row = self.row(args[0])
        if row is None:
            return None
        if row["type"] != STRING_TYPE:
            raise WRONGTYPE
        return row["value"]

    def set(self, server, fd, args):
        if len(args) < 2:
            raise arity("set")
        key, value = args[0], args[1]
        if len(args) == 2:
            with self.lock:
                self.write(key, {"type": STRING_TYPE, "expire": 0, "value": value})
            return OK
        condition, unit, amount, i = b"", b"", b"", 2
        while i < len(args):
            option = args[i].upper()
            if option in (b"NX", b"XX") and condition in (b"", option):
                condition = option
            elif option in (b"EX", b"PX") and unit in (b"", option) and i + 1 < len(args):
                unit, amount = option, args[i + 1]
                i += 1
            else:
                raise SYNTAX
            i += 1
        expire = 0
        if unit:
            milliseconds = to_int(amount)
            if milliseconds <= 0 or (unit == b"EX" and milliseconds > INT64_MAX // 1000):
                raise expire_time("set")
            expire = milliseconds * (1000 if unit == b"EX" else 1) + now_ms()
            if expire > INT64_MAX:
                raise expire_time("set")
        with self.lock:
            if condition and (self.row(key, locked=True) is None) != (condition == b"NX"):
                return None
            self.write(key, {"type": STRING_TYPE, "expire": expire, "value": value})
        return OK

    def delete(self, server, fd, args):
        if not args:
            raise arity("del")
        with self.lock:
            return sum(self.row(key, locked=True) is not None and self.table.delete(key) for key in args)

    def exists(self, server, fd, args):
        if not args:
            raise arity("exists")
        return sum(self.row(key) is not None for key in args)

    def incr(self, server, fd, args):
        if len(args) != 1:
            raise arity("incr")
        return self.add(args[0], 1)

    def decr(self, server, fd, args):
        if len(args) != 1:
            raise arity("decr")
        return self.add(args[0], -1)

    def incrby(self, server, fd, args):
        if len(args) != 2:
            raise arity("incrby")
        return self.add(args[0], to_int(args[1]))

    def add(self, key: bytes, amount: int) -> int:
        with self.lock:
            row = self.row(key, locked=True)
            if row is None:
                self.write(key, {"type": STRING_TYPE, "expire": 0, "value": b"%d" % amount})
                return amount
            if row["type"] != STRING_TYPE:
                raise WRONGTYPE
            number = to_int(row["value"]) + amount
            if not INT64_MIN <= number <= INT64_MAX:
                raise OVERFLOW
            self.table.set(key, {"value": b"%d" % number})  # the expiry stays; 20 bytes always fit
        return number

    def mget(self, server, fd, args):
        if not args:
            raise arity("mget")
        values = []
        for key in args:
            row = self.row(key)
            values.append(row["value"] if row is not None and row["type"] == STRING_TYPE else None)
        return values

    def mset(self, server, fd, args):
        if not args or len(args) % 2:
            raise arity("mset")
        with self.lock:
            for key, value in zip(args[::2], args[1::2], strict=True):
                self.write(key, {"type": STRING_TYPE, "expire": 0, "value": value})
        return OK

    def expire(self, server, fd, args):
        if len(args) < 2:
            raise arity("expire")
        flags = set()
        for option in args[2:]:
            name = option.upper()
            if name not in (b"NX", b"XX", b"GT", b"LT"):
                raise ReplyError(f"ERR Unsupported option {option.decode(errors='replace')}")
            flags.add(name)
        if b"NX" in flags and len(flags) > 1:
            raise ReplyError("ERR NX and XX, GT or LT options at the same time are not compatible")
        if {b"GT", b"LT"} <= flags:
            raise ReplyError("ERR GT and LT options at the same time are not compatible")
        seconds = to_int(args[1])
        if not INT64_MIN // 1000 <= seconds <= INT64_MAX // 1000:
            raise expire_time("expire")
        now = now_ms()
        when = seconds * 1000
        if when > INT64_MAX - now:
            raise expire_time("expire")
        when += now
        key = args[0]
        with self.lock:
            row = self.row(key, locked=True)
            if row is None:
                return 0
            current = row["expire"] or -1
            if (
                (b"NX" in flags and current != -1)
                or (b"XX" in flags and current == -1)
                or (b"GT" in flags and (current == -1 or when <= current))
                or (b"LT" in flags and current != -1 and when >= current)
            ):
                return 0
            if when <= now:
                self.table.delete(key)
            else:
                self.table.set(key, {"expire": when})
        return 1

    def ttl(self, server, fd, args):
        if len(args) != 1:
            raise arity("ttl")
        row = self.row(args[0])
        if row is None:
            return -2
        if not row["expire"]:
            return -1
        return (max(row["expire"] - now_ms(), 0) + 500) // 1000

    def keys(self, server, fd, args):
        if len(args) != 1:
            raise arity("keys")
        if args[0] == b"*":
            return self.live_keys()
        pattern = glob_to_regex(args[0])
        return [key for key in self.live_keys() if pattern.fullmatch(key)]

    def dbsize(self, server, fd, args):
        if args:
            raise arity("dbsize")
        return len(self.live_keys())

    def flushdb(self, server, fd, args):
        if len(args) > 1 or (args and args[0].upper() not in (b"ASYNC", b"SYNC")):
            raise SYNTAX
        with self.lock:
            for key, _ in list(self.table):
                self.table.delete(key)
        return OK

    def hset(self, server, fd, args):
        if len(args) < 3 or len(args) % 2 == 0:
            raise arity("hset")
        key = args[0]
        with self.lock:
            fields = self.hash(key, locked=True)
            size = len(fields)
            fields.update(zip(args[1::2], args[2::2], strict=True))
            self.write(key, {"type": HASH_TYPE, "expire": 0, "value": marshal.dumps(fields)})
        return len(fields) - size

    def hget(self, server, fd, args):
        if len(args) != 2:
            raise arity("hget")
        return self.hash(args[0]).get(args[1])

    def hgetall(self, server, fd, args):
        if len(args) != 1:
            raise arity("hgetall")
        return self.hash(args[0])

    def quit(self, server, fd, args):
        server.close(fd)
        return OK

    def info(self, server, fd, args):
        lines = [
            "# Server",
            "redis_version:7.0.0",  # the Redis whose replies this store follows (clients check it)
            "redis_mode:standalone",
            f"process_id:{os.getpid()}",
            f"pyswoole_worker_id:{server.worker_id}",
            f"tcp_port:{server.port}",
            "",
            "# Keyspace",
            f"db0:keys={len(self.live_keys())},expires=0,avg_ttl=0",
        ]
        return ("\r\n".join(lines) + "\r\n").encode()


COMMANDS = "ping echo get set exists incr incrby decr mget mset expire ttl keys dbsize flushdb hset hget hgetall quit info"


def register(server: Server, store: Store) -> None:
    """Answer the store's commands on ``server``."""
    for name in COMMANDS.split():
        server.set_handler(name, getattr(store, name))
    server.set_handler("del", store.delete)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=6380)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rows", type=int, default=65536, help="the most keys the store holds")
    parser.add_argument("--value-size", type=int, default=1024, help="the longest value (or hash), bytes")
    args = parser.parse_args()

    server = Server(args.host, args.port)
    server.set({"worker_num": args.workers})
    register(server, Store(args.rows, args.value_size))
    server.start()


if __name__ == "__main__":
    main()
