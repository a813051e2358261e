"""The MySQL statement path in-process: CPU time per statement of pyswoole's own layers.

A stand-in driver answers every statement at once (one row, no socket), so what is measured is the
work pyswoole adds per statement: ``MySQLConnection.query`` (busy check, reconnect-once wrapper,
the connection's one cursor, counters) and the pool's ``acquire``/release around it, as
``time.process_time()`` per statement, the steady figure on a busy machine. The driver itself
(asyncmy's ~20 µs per ``SELECT``, a third of it the kernel's write to the server) is measured by
``bench_db_pool.py`` and ``bench_db_http.py``.

    python3 bench/bench_db_path.py [--statements 200000] [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop

from pyswoole.db import MySQLConnection, mysql_pool

ROWS = [{"one": "1"}]
DRIVER = "stand-in driver alone"


class StandInCursor:
    """What MySQLConnection uses of asyncmy's cursor, answering at once."""

    lastrowid = 0

    async def execute(self, sql: str, args: Any = None) -> int:
        return 1

    async def fetchall(self) -> list[dict[str, Any]]:
        return ROWS


class StandInDriver:
    """What MySQLConnection uses of asyncmy's connection besides the cursor."""

    connected = True

    def close(self) -> None:
        pass

    async def ensure_closed(self) -> None:
        pass


class DriverlessConnection(MySQLConnection):
    """A MySQLConnection whose connect opens the stand-in instead of a socket."""

    async def connect(self) -> DriverlessConnection:
        self._conn, self._cursor = StandInDriver(), StandInCursor()
        self.connects += 1
        return self


async def measure(statements: int) -> dict[str, float]:
    """µs of CPU per statement for each way, the stand-in's own cost first."""
    conn = await DriverlessConnection().connect()
    pool = mysql_pool(size=8)  # configured as for MySQL (ping, close, reusable check) ...
    pool.factory = DriverlessConnection().connect  # ... but opening stand-ins
    cursor = StandInCursor()

    async def driver_only() -> None:
        await cursor.execute("SELECT 1")
        await cursor.fetchall()

    async def query() -> None:
        await conn.query("SELECT 1")

    async def acquire_only() -> None:
        async with pool.acquire():
            pass

    async def pooled_query() -> None:
        async with pool.acquire() as pooled:
            await pooled.query("SELECT 1")

    ways: dict[str, Callable[[], Awaitable[None]]] = {
        DRIVER: driver_only,
        "MySQLConnection.query": query,
        "pool acquire + release": acquire_only,
        "pool acquire + query + release": pooled_query,
    }
    figures = {}
    for name, way in ways.items():
        await way()  # the pool opens its connection outside the measurement
        started = time.process_time()
        for _ in range(statements):
            await way()
        figures[name] = (time.process_time() - started) / statements * 1e6
    await pool.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    runs = [uvloop.run(measure(args.statements)) for _ in range(args.reps)]
    driver = statistics.median(run[DRIVER] for run in runs)
    for name in runs[0]:
        values = sorted(run[name] for run in runs)
        middle = statistics.median(values)
        ours = f", pyswoole's part {middle - driver:.2f}" if "query" in name else ""
        print(f"{name:32s} {middle:5.2f} µs CPU/statement (min {values[0]:.2f}){ours}")


if __name__ == "__main__":
    main()
