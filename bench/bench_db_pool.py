"""MySQL query rates: short connections vs long connections vs a pool, and asyncmy vs aiomysql.

``--concurrency`` coroutines (think: concurrent requests of one worker) run ``SELECT 1`` for
``--duration`` seconds, in one process on uvloop, against a private MariaDB (started here, pinned to
its own CPU) or the server given with ``--mysql-port``. Modes, alternated rep by rep:

* ``short``: every query connects, queries and closes (``MySQLConnection``);
* ``long``: one ``MySQLConnection`` per coroutine, kept;
* ``pooled``: the coroutines share ``mysql_pool(size=--pool-size)``;
* ``asyncmy`` / ``aiomysql``: a bare driver connection per coroutine (no pyswoole), the ceiling of
  ``long`` and the evidence for the driver choice (``aiomysql`` only when it is installed).

"connects/query" is the server's own count (its ``Connections`` status variable). This is the
direct measurement; issue 10's HTTP variant (wrk against one worker) waits for the HTTP server.

    python3 bench/bench_db_pool.py [--reps 5] [--duration 2] [--concurrency 20] [--pool-size 5]
                                   [--only short,pooled] [--no-write]

Writes bench/results/db_pool.md.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncmy
import uvloop
from harness import (
    BENCH_DIR,
    LOAD_CPU,
    SERVER_CPU,
    bench_arguments,
    environment,
    log,
    markdown_table,
    medians,
    spread,
    write_section,
)

from pyswoole.db import MySQLConnection, mysql_pool
from tests.db_servers import MariaDBServer

RESULTS = BENCH_DIR / "results" / "db_pool.md"
QUERY = "SELECT 1"

Worker = Callable[[], Awaitable[None]]  # runs queries until the deadline, counting them


class Run:
    """One measured rep: coroutines loop until ``deadline``, adding to ``queries``."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.perf_counter() + seconds
        self.queries = 0

    def going(self) -> bool:
        return time.perf_counter() < self.deadline


async def short(options: dict[str, Any], run: Run, args: Any) -> None:
    async def worker() -> None:
        while run.going():
            conn = await MySQLConnection(**options).connect()
            await conn.query(QUERY)
            await conn.close()
            run.queries += 1

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))


async def long(options: dict[str, Any], run: Run, args: Any) -> None:
    async def worker() -> None:
        conn = await MySQLConnection(**options).connect()
        while run.going():
            await conn.query(QUERY)
            run.queries += 1
        await conn.close()

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))


async def pooled(options: dict[str, Any], run: Run, args: Any) -> None:
    pool = mysql_pool(**options, size=args.pool_size)

    async def worker() -> None:
        while run.going():
            async with pool.acquire() as conn:
                await conn.query(QUERY)
            run.queries += 1

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    await pool.close()


async def bare_asyncmy(options: dict[str, Any], run: Run, args: Any) -> None:
    async def worker() -> None:
        conn = await asyncmy.connect(**options, autocommit=True)
        while run.going():
            async with conn.cursor() as cursor:
                await cursor.execute(QUERY)
                await cursor.fetchall()
            run.queries += 1
        await conn.ensure_closed()

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))


async def bare_aiomysql(options: dict[str, Any], run: Run, args: Any) -> None:
    import aiomysql

    async def worker() -> None:
        conn = await aiomysql.connect(**options, autocommit=True)
        while run.going():
            async with conn.cursor() as cursor:
                await cursor.execute(QUERY)
                await cursor.fetchall()
            run.queries += 1
        await conn.ensure_closed()

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))


MODES: dict[str, Callable[[dict[str, Any], Run, Any], Awaitable[None]]] = {
    "short": short,
    "long": long,
    "pooled": pooled,
    "asyncmy": bare_asyncmy,
    "aiomysql": bare_aiomysql,
}


async def server_connections(admin: MySQLConnection) -> int:
    return int((await admin.query("SHOW GLOBAL STATUS LIKE 'Connections'"))[0]["Value"])


def cpu_seconds(server_pid: int | None) -> float:
    """CPU time used so far by this process and by the server (when it is ours to watch).

    Unlike queries/s, CPU per query hardly moves when other work shares the machine."""
    times = os.times()
    used = times.user + times.system
    if server_pid is not None:
        fields = Path(f"/proc/{server_pid}/stat").read_text().rsplit(")", 1)[1].split()
        used += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return used


async def measure(
    options: dict[str, Any], names: list[str], args: Any, server_pid: int | None
) -> dict[str, list[dict[str, float]]]:
    admin = await MySQLConnection(**options).connect()
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for rep in range(-1, args.reps):  # rep -1: warm-up, not recorded
        for name in names:
            run = Run(args.warmup if rep < 0 else args.duration)
            before = await server_connections(admin)
            cpu_before = cpu_seconds(server_pid)
            started = time.perf_counter()
            await MODES[name](options, run, args)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(server_pid) - cpu_before
            connects = await server_connections(admin) - before
            if rep < 0:
                continue
            sample = {
                "queries_per_s": run.queries / elapsed,
                "cpu_us_per_query": cpu / run.queries * 1e6,
                "connects_per_query": connects / run.queries,
            }
            samples[name].append(sample)
            log(
                f"rep {rep + 1}/{args.reps} {name}: {sample['queries_per_s']:,.0f} q/s, "
                f"{sample['cpu_us_per_query']:,.0f} us CPU/query, {connects} connects"
            )
    await admin.close()
    return samples


def report(samples: dict[str, list[dict[str, float]]], args: Any) -> str:
    middle = medians(samples)
    base = middle.get("short")
    rows = []
    for name, figures in middle.items():
        rate, cpu = figures["queries_per_s"], figures["cpu_us_per_query"]
        rows.append(
            [
                name,
                rate,
                f"±{spread([s['queries_per_s'] for s in samples[name]]) * 100:.0f}%",
                f"{rate / base['queries_per_s']:.1f}x" if base else "-",
                cpu,
                f"±{spread([s['cpu_us_per_query'] for s in samples[name]]) * 100:.0f}%",
                f"{base['cpu_us_per_query'] / cpu:.1f}x" if base else "-",
                f"{figures['connects_per_query']:.4f}",
            ]
        )
    header = [
        "mode",
        "queries/s",
        "spread",
        "vs short",
        "CPU µs/query",
        "spread",
        "vs short",
        "connects/query",
    ]
    table = markdown_table(header, rows)
    note = (
        "CPU µs/query is the CPU time of the client process plus the MariaDB server per query "
        "(what a query costs the machine; steadier than queries/s when other work shares the VM). "
        "`short` connects for every query; `long` keeps one connection per coroutine; `pooled` "
        f"shares {args.pool_size} connections among {args.concurrency} coroutines; `asyncmy` and "
        "`aiomysql` are the bare drivers with one connection per coroutine."
    )
    versions = ["asyncmy"] + (["aiomysql"] if "aiomysql" in samples else [])
    parameters = {
        "concurrency": args.concurrency,
        "pool size": args.pool_size,
        "reps": args.reps,
        "duration s": args.duration,
        "query": f"`{QUERY}`",
    }
    return "\n\n".join(
        [
            "## MySQL: short vs long vs pooled connections (bench/bench_db_pool.py)",
            environment(packages=versions, tools=[["mariadbd", "--version"]], parameters=parameters),
            table,
            note,
        ]
    )


def main() -> None:
    parser = bench_arguments(__doc__.splitlines()[0], reps=5, duration=2.0)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--pool-size", type=int, default=5)
    parser.add_argument("--mysql-host", default="127.0.0.1")
    parser.add_argument("--mysql-port", type=int, help="use this server instead of a private MariaDB")
    parser.add_argument("--mysql-user", default="root")
    parser.add_argument("--mysql-password", default="")
    parser.add_argument("--mysql-db", default="test")
    args = parser.parse_args()
    names = [name for name in MODES if name != "aiomysql" or importlib.util.find_spec("aiomysql")]
    if args.only:
        names = [name.strip() for name in args.only.split(",")]
        unknown = set(names) - set(MODES)
        if unknown:
            raise SystemExit(f"unknown mode(s): {', '.join(sorted(unknown))}")

    server = None
    directory = None
    if args.mysql_port is None:
        directory = Path(tempfile.mkdtemp(prefix="pyswoole-bench-mariadb-"))
        mariadbd = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")
        install_db = shutil.which("mariadb-install-db")
        if not mariadbd or not install_db:
            raise SystemExit("mariadbd/mariadb-install-db not found (Debian package mariadb-server)")
        server = MariaDBServer(mariadbd, install_db, directory)
    try:
        if server is not None:
            server.start()
            server.query("CREATE DATABASE test", db=None)
            subprocess.run(
                ["taskset", "-a", "-cp", str(SERVER_CPU), str(server.pid)], check=True, capture_output=True
            )
            args.mysql_port = server.port
        os.sched_setaffinity(0, {LOAD_CPU})
        options = dict(
            host=args.mysql_host,
            port=args.mysql_port,
            user=args.mysql_user,
            password=args.mysql_password,
            db=args.mysql_db,
        )
        samples = uvloop.run(measure(options, names, args, server.pid if server else None))
    finally:
        if server is not None:
            server.stop()
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    body = report(samples, args)
    if args.no_write:
        print(body)
    else:
        RESULTS.parent.mkdir(exist_ok=True)
        write_section("db_pool", body, path=RESULTS)
        log(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
