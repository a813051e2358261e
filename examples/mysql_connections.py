"""Short vs long vs pooled MySQL connections: connects made and time per query.

The seed's README (MySQL 长连接与连接池) compares three ways to talk to MySQL; this runs them side
by side. ``--concurrency`` coroutines (think: workers) share ``--queries`` queries:

* short: every query opens its own connection and closes it (php-fpm's norm: a connect per request);
* long: each coroutine keeps one ``MySQLConnection`` (reconnects once on 2006/2013) for all its
  queries: one connect per coroutine;
* pooled: the coroutines share ``mysql_pool(size=--pool-size)``: at most that many connections.

"connects" is the server's own count (the growth of its ``Connections`` status variable), so it
shows what the database paid. Every answer is checked; a wrong one exits with status 1.

Run: ``python3 examples/mysql_connections.py [--mysql-host 127.0.0.1] [--mysql-port 3306]
[--mysql-user root] [--mysql-password ''] [--mysql-db test] [--queries 1000] [--concurrency 20]
[--pool-size 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from asyncmy.errors import MySQLError

from pyswoole.db import MySQLConnection, mysql_pool

QUERY = "SELECT %s AS n"


async def run_short(options: dict[str, Any], numbers: list[int]) -> list[int]:
    answers = []
    for n in numbers:
        conn = await MySQLConnection(**options).connect()
        answers.append((await conn.query(QUERY, [n]))[0]["n"])
        await conn.close()
    return answers


async def run_long(options: dict[str, Any], numbers: list[int]) -> list[int]:
    conn = MySQLConnection(**options)
    answers = [(await conn.query(QUERY, [n]))[0]["n"] for n in numbers]
    await conn.close()
    return answers


def pooled(pool_size: int) -> Callable[[dict[str, Any], list[list[int]]], Awaitable[list[list[int]]]]:
    async def run_pooled(options: dict[str, Any], shares: list[list[int]]) -> list[list[int]]:
        pool = mysql_pool(**options, size=pool_size)

        async def share(numbers: list[int]) -> list[int]:
            answers = []
            for n in numbers:
                async with pool.acquire() as conn:
                    answers.append((await conn.query(QUERY, [n]))[0]["n"])
            return answers

        try:
            return await asyncio.gather(*(share(numbers) for numbers in shares))
        finally:
            await pool.close()

    return run_pooled


async def server_connections(admin: MySQLConnection) -> int:
    return int((await admin.query("SHOW GLOBAL STATUS LIKE 'Connections'"))[0]["Value"])


async def compare(args: argparse.Namespace) -> bool:
    options = dict(
        host=args.mysql_host,
        port=args.mysql_port,
        user=args.mysql_user,
        password=args.mysql_password,
        db=args.mysql_db,
    )
    try:
        admin = await MySQLConnection(**options).connect()
    except (OSError, MySQLError) as exc:
        print(f"cannot reach MySQL at {args.mysql_host}:{args.mysql_port}: {exc}", file=sys.stderr)
        return False
    shares = [list(range(start, args.queries, args.concurrency)) for start in range(args.concurrency)]

    async def each(run: Callable[[dict[str, Any], list[int]], Awaitable[list[int]]]) -> list[list[int]]:
        return await asyncio.gather(*(run(options, numbers) for numbers in shares))

    modes: list[tuple[str, Callable[[], Awaitable[list[list[int]]]]]] = [
        ("short", lambda: each(run_short)),
        ("long", lambda: each(run_long)),
        (f"pooled ({args.pool_size})", lambda: pooled(args.pool_size)(options, shares)),
    ]
    print(f"{args.queries} queries from {args.concurrency} coroutines on {args.mysql_host}:{args.mysql_port}")
    print(f"{'mode':<12} {'connects':>9} {'total s':>9} {'ms/query':>9} {'queries/s':>10}")
    correct = True
    for name, run in modes:
        before = await server_connections(admin)
        started = time.perf_counter()
        answers = await run()
        elapsed = time.perf_counter() - started
        connects = await server_connections(admin) - before
        correct &= answers == shares
        print(
            f"{name:<12} {connects:>9} {elapsed:>9.3f} {elapsed * 1000 / args.queries:>9.3f}"
            f" {args.queries / elapsed:>10.0f}",
            flush=True,
        )
    await admin.close()
    if not correct:
        print("some answers were wrong", file=sys.stderr)
    return correct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mysql-host", default="127.0.0.1")
    parser.add_argument("--mysql-port", type=int, default=3306)
    parser.add_argument("--mysql-user", default="root")
    parser.add_argument("--mysql-password", default="")
    parser.add_argument("--mysql-db", default="test")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--pool-size", type=int, default=5)
    args = parser.parse_args()
    if not 1 <= args.concurrency <= args.queries:
        parser.error("--concurrency must be between 1 and --queries")
    sys.exit(0 if uvloop.run(compare(args)) else 1)


if __name__ == "__main__":
    main()
