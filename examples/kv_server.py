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
worker (and every connection, whichever worker serves it) sees the same keys. A value that is an
integer is kept as a number (as Redis does), so INCR is one atomic ``Table.incr_if``. Reads take
no lock, and every write is one atomic Table operation: ``set`` for a plain SET, and for a command
that reads before it writes (SET NX/XX, DEL, EXPIRE, HSET, INCR of a key with an expiry) a
compare-and-set, ``Table.replace``, retried when another process changed the key in between. So
commands never interleave halfway (INCR is atomic, SET NX is a real test-and-set); MSET sets its
keys one after the other. Expired keys are removed when they are next touched.

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
from pyswoole.shm import Table, TableFullError

INTEGER_TYPE = 0  # a string that is a 64-bit integer, kept in "number" (0: what incr_if creates)
STRING_TYPE = 1
HASH_TYPE = 2
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INTEGER_START = frozenset(b"-0123456789"[i : i + 1] for i in range(11))  # first bytes of integers
PLAIN_INTEGER = {"type": INTEGER_TYPE, "expire": 0}  # the rows INCR changes in one step
STRING_COLUMNS = ("type", "expire", "number", "value")  # what GET reads, as a tuple

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


def is_expired(row: dict, now: int | None = None) -> bool:
    expire = row["expire"]
    return bool(expire) and expire <= (now_ms() if now is None else now)


class Store:
    """Keys in a shared Table: a type, an expiry (ms since the epoch, 0 for none) and a value
    (``number`` for an integer, ``value`` for other strings and for hashes, serialised)."""

    def __init__(self, rows: int, value_size: int):
        self.value_size = value_size
        self.integer_size = min(20, value_size)  # the longest integer, "-9223372036854775808"
        self.table = Table(rows)
        self.table.column("type", Table.TYPE_INT)
        self.table.column("expire", Table.TYPE_INT)
        self.table.column("number", Table.TYPE_INT)
        self.table.column("value", Table.TYPE_STRING, value_size)
        self.table.create()
        self.plain_string = {"type": STRING_TYPE, "expire": 0, "value": b""}

    # -- rows -------------------------------------------------------------------------------------
    def stored(self, key: bytes) -> dict | None:
        """The row of ``key`` as it is, expired or not (None: missing, or too long to be a key)."""
        try:
            return self.table.get(key)
        except ValueError:
            return None

    def row(self, key: bytes) -> dict | None:
        """The live row of ``key``; an expired one is removed (unless it changed meanwhile)."""
        row = self.stored(key)
        if row is None or not row["expire"] or row["expire"] > now_ms():
            return row
        self.table.replace(key, row, None)
        return None

    def string_row(self, value: bytes, expire: int = 0) -> dict:
        """The columns that hold a string value: an integer as a number."""
        if value[:1] in INTEGER_START and len(value) <= self.integer_size:
            try:
                number = int(value)
            except ValueError:
                number = None
            if number is not None and b"%d" % number == value and INT64_MIN <= number <= INT64_MAX:
                return {"type": INTEGER_TYPE, "expire": expire, "number": number}
        return {"type": STRING_TYPE, "expire": expire, "value": value}

    def write_failed(self, key: bytes, exc: Exception) -> ReplyError:
        """The reply to a write the Table refused (``ValueError``, ``TableFullError``)."""
        if isinstance(exc, TableFullError):
            return OUT_OF_MEMORY
        if len(key) > Table.KEY_MAX:
            return ReplyError(f"ERR key is longer than {Table.KEY_MAX} bytes")
        return ReplyError(f"ERR value is longer than {self.value_size} bytes")

    def replace(self, key: bytes, stored: dict | None, values: dict | None) -> bool:
        try:
            return self.table.replace(key, stored, values)
        except (ValueError, TableFullError) as exc:
            raise self.write_failed(key, exc) from None

    def hash(self, row: dict | None) -> dict[bytes, bytes]:
        if row is None:
            return {}
        if row["type"] != HASH_TYPE:
            raise WRONGTYPE
        return marshal.loads(row["value"])

    def live_keys(self) -> list[bytes]:
        now = now_ms()
        return [key for key, row in self.table if not is_expired(row, now)]

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
        try:
            row = self.table.get(args[0], STRING_COLUMNS)
        except ValueError:  # a key longer than the table takes cannot be there
            return None
        if row is None:
            return None
        kind, expire, number, value = row
        if expire and expire <= now_ms():
            return self.row(args[0])  # removes it: None
        if kind == STRING_TYPE:
            return value
        if kind == INTEGER_TYPE:
            return b"%d" % number
        raise WRONGTYPE

    def set(self, server, fd, args):
        if len(args) != 2:
            return self.set_with_options(args)
        key, value = args
        if value[:1] in INTEGER_START:
            row = self.string_row(value)
        else:  # (one dict for every plain string: Table.set copies the values out at once)
            row = self.plain_string
            row["value"] = value
        try:
            self.table.set(key, row)
        except (ValueError, TableFullError) as exc:
            raise self.write_failed(key, exc) from None
        return OK

    def set_with_options(self, args):
        if len(args) < 2:
            raise arity("set")
        key, value = args[0], args[1]
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
        row = self.string_row(value, expire)
        while True:
            stored = self.stored(key)
            if condition and (stored is None or is_expired(stored)) != (condition == b"NX"):
                return None
            if self.replace(key, stored, row):
                return OK

    def delete(self, server, fd, args):
        if not args:
            raise arity("del")
        removed = 0
        for key in args:
            while (stored := self.stored(key)) is not None:
                if self.table.replace(key, stored, None):
                    removed += not is_expired(stored)
                    break
        return removed

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
        try:
            number = self.table.incr_if(key, "number", amount, PLAIN_INTEGER)
        except OverflowError:
            raise OVERFLOW from None
        except (ValueError, TableFullError) as exc:
            raise self.write_failed(key, exc) from None
        return self.add_slowly(key, amount) if number is None else number

    def add_slowly(self, key: bytes, amount: int) -> int:
        """INCR of a key with an expiry, or not holding an integer: read, check, compare-and-set."""
        while True:
            stored = self.stored(key)
            if stored is None or is_expired(stored):
                number = amount
                row = {"type": INTEGER_TYPE, "expire": 0, "number": number}
            elif stored["type"] == INTEGER_TYPE:
                number = stored["number"] + amount
                if not INT64_MIN <= number <= INT64_MAX:
                    raise OVERFLOW
                row = {"number": number}  # the expiry stays
            elif stored["type"] == STRING_TYPE:
                raise NOT_INTEGER
            else:
                raise WRONGTYPE
            if self.replace(key, stored, row):
                return number

    def mget(self, server, fd, args):
        if not args:
            raise arity("mget")
        values = []
        for key in args:
            try:
                values.append(self.get(server, fd, [key]))
            except ReplyError:  # not a string: nil, as in Redis
                values.append(None)
        return values

    def mset(self, server, fd, args):
        if not args or len(args) % 2:
            raise arity("mset")
        pairs = list(zip(args[::2], args[1::2], strict=True))
        for key, value in pairs:  # refuse before writing anything
            if len(key) > Table.KEY_MAX or len(value) > self.value_size:
                raise self.write_failed(key, ValueError())
        for key, value in pairs:
            try:
                self.table.set(key, self.string_row(value))
            except TableFullError as exc:
                raise self.write_failed(key, exc) from None
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
        while True:
            stored = self.stored(key)
            if stored is None or is_expired(stored, now):
                return 0
            current = stored["expire"] or -1
            if (
                (b"NX" in flags and current != -1)
                or (b"XX" in flags and current == -1)
                or (b"GT" in flags and (current == -1 or when <= current))
                or (b"LT" in flags and current != -1 and when >= current)
            ):
                return 0
            if self.table.replace(key, stored, None if when <= now else {"expire": when}):
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
        for key, _ in list(self.table):
            self.table.delete(key)
        return OK

    def hset(self, server, fd, args):
        if len(args) < 3 or len(args) % 2 == 0:
            raise arity("hset")
        key = args[0]
        while True:
            stored = self.stored(key)
            live = None if stored is None or is_expired(stored) else stored
            fields = self.hash(live)
            size = len(fields)
            fields.update(zip(args[1::2], args[2::2], strict=True))
            expire = 0 if live is None else live["expire"]  # a hash keeps its expiry, as in Redis
            if self.replace(
                key, stored, {"type": HASH_TYPE, "expire": expire, "value": marshal.dumps(fields)}
            ):
                return len(fields) - size

    def hget(self, server, fd, args):
        if len(args) != 2:
            raise arity("hget")
        return self.hash(self.row(args[0])).get(args[1])

    def hgetall(self, server, fd, args):
        if len(args) != 1:
            raise arity("hgetall")
        return self.hash(self.row(args[0]))

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
