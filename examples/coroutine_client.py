"""Port of ``coroutine_client.php``: an HTTP server whose requests query MySQL and answer JSON.

Run: ``python3 examples/coroutine_client.py [--host 0.0.0.0] [--port 9501] [--workers 2]
[--mysql-host 127.0.0.1] [--mysql-port 3306] [--mysql-user root] [--mysql-password root]
[--mysql-socket PATH] [--mysql-db test] [--mysql-table test_table] [--mysql-query SQL]
[--pool-size 16] [--short-connections]``, then
``curl http://127.0.0.1:9501/`` -> ``[{"id":"1","name":"x"}]``: every row of the table, every value
a string as in Swoole's MySQL client without ``strict_type`` (NULL stays ``null``); an empty table
gives ``[]``. ``--mysql-query`` runs that statement instead of reading the table (e.g. ``SELECT 1``,
what ``bench/bench_db_http.py`` measures). ``--mysql-socket`` reaches a local server through its Unix
socket instead of TCP (cheaper per statement). Every request runs the query, ``/favicon.ico`` included, as in the original. Requests
are served concurrently: a slow query holds up only its own request.

Fixed from the original:

* it opened a new connection for every request and never closed it; here each worker shares a
  pool of ``--pool-size`` long connections (``pyswoole.db.mysql_pool``), which also reconnect
  after "server has gone away". ``--short-connections`` restores the original's connect per
  request (closed after it), for comparison (``bench/bench_db_http.py``);
* when MySQL could not be reached it answered ``false`` with status 200; here the answer is
  ``503`` with ``{"error": "..."}``, logged, and the worker keeps serving;
* the table name is quoted as an identifier, so ``--mysql-table`` cannot inject SQL.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import orjson
from asyncmy.errors import MySQLError

from pyswoole.db import MySQLConnection, mysql_pool
from pyswoole.http import Server

log = logging.getLogger("pyswoole")


def quote_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mysql-host", default="127.0.0.1")
    parser.add_argument("--mysql-port", type=int, default=3306)
    parser.add_argument("--mysql-user", default="root")
    parser.add_argument("--mysql-password", default="root")
    parser.add_argument("--mysql-socket", help="a local server's Unix socket, instead of host and port")
    parser.add_argument("--mysql-db", default="test")
    parser.add_argument("--mysql-table", default="test_table")
    parser.add_argument("--mysql-query", help="the SQL to run (default: every row of --mysql-table)")
    parser.add_argument("--pool-size", type=int, default=16, help="connections per worker")
    parser.add_argument("--short-connections", action="store_true", help="connect for every request")
    args = parser.parse_args()

    # conv={}: no type conversion, so every value arrives as the string MySQL sent (like Swoole)
    options: dict[str, Any] = dict(
        host=args.mysql_host,
        port=args.mysql_port,
        user=args.mysql_user,
        password=args.mysql_password,
        db=args.mysql_db,
        conv={},
    )
    if args.mysql_socket:
        options["unix_socket"] = args.mysql_socket
    sql = args.mysql_query or f"SELECT * FROM {quote_identifier(args.mysql_table)}"
    pool = mysql_pool(**options, size=args.pool_size)  # opens nothing yet: each worker fills its own

    async def rows() -> list[dict[str, Any]]:
        if not args.short_connections:
            async with pool.acquire() as conn:
                return await conn.query(sql)
        conn = await MySQLConnection(**options).connect()
        try:
            return await conn.query(sql)
        finally:
            await conn.close()

    async def on_request(request: Any, response: Any) -> None:
        response.header("Content-Type", "application/json")
        try:
            body = await rows()
        except (OSError, MySQLError) as exc:
            log.error("query failed: %s: %s", type(exc).__name__, exc)
            response.status(503)
            response.end(orjson.dumps({"error": str(exc)}))
            return
        response.end(orjson.dumps(body))  # compact UTF-8 JSON, several times faster than json.dumps

    server = Server(args.host, args.port)
    server.set({"worker_num": args.workers})
    server.on("request", on_request)
    server.start()


if __name__ == "__main__":
    main()
