"""HTTP requests that each run one MySQL query: a connection per request vs a pool (issue 10).

``examples/coroutine_client.py`` with 1 worker answers every request with the row of
``SELECT 1 AS one`` (``--mysql-query``), either connecting for each request (``--short-connections``, what the
seed's ``coroutine_client.php`` did) or through its pool. wrk drives both in the same run,
alternated rep by rep on a fresh server each; a private MariaDB (started here) shares the load
generator's CPU, so the pyswoole worker has a CPU of its own.

    python3 bench/bench_db_http.py [--reps 5] [--duration 5] [--connections 50] [--pool-size 50]
                                   [--only short,pooled] [--no-write]

Writes bench/results/db_http.md. Target (issue 10): pooled >= 5x short.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness
from harness import (
    BENCH_DIR,
    LOAD_CPU,
    Contender,
    RunningServer,
    alternate,
    answers,
    bench_arguments,
    bench_session,
    environment,
    http_get,
    log,
    markdown_table,
    medians,
    python_server,
    select,
    spread,
    write_section,
    wrk_load,
)

from tests.db_servers import MariaDBServer

RESULTS = BENCH_DIR / "results" / "db_http.md"
#: What each request asks MariaDB (issue 10: one ``SELECT 1`` per request).
QUERY = "SELECT 1 AS one"
#: contender name suffix -> how the worker reaches MariaDB (TCP on 127.0.0.1, or its Unix socket)
TRANSPORTS = {"": "tcp", "_unix": "socket"}


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_mariadb(directory: Path) -> MariaDBServer:
    mariadbd = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")
    install_db = shutil.which("mariadb-install-db")
    if not mariadbd or not install_db:
        raise SystemExit("mariadbd/mariadb-install-db not found (Debian package mariadb-server)")
    server = MariaDBServer(mariadbd, install_db, directory)
    server.start()
    server.query("CREATE DATABASE test", db=None)
    subprocess.run(["taskset", "-a", "-cp", str(LOAD_CPU), str(server.pid)], check=True, capture_output=True)
    return server


def contenders(mariadb: MariaDBServer, args: Any) -> list[Contender]:
    common = ["--host", "127.0.0.1", "--workers", "1", "--mysql-port", str(mariadb.port)]
    common += ["--mysql-password", "", "--mysql-query", QUERY, "--pool-size", str(args.pool_size)]
    # the example of the pyswoole measured (the working tree, or --revision's export), which the
    # harness also puts first on the servers' PYTHONPATH
    example = harness.pyswoole_source / "examples" / "coroutine_client.py"
    ready = answers(http_get("/"), b"HTTP/1.1 200")
    made = []
    port = 18701
    for transport, reach in TRANSPORTS.items():
        for mode, extra in (("short", ["--short-connections"]), ("pooled", [])):
            via = ["--mysql-socket", mariadb.socket] if reach == "socket" else []
            command = python_server(example, "--port", str(port), *common, *via, *extra)
            made.append(Contender(f"{mode}{transport}", command, port, ready=ready))
            port += 1
    return made


def measure(mariadb: MariaDBServer, args: Any) -> Any:
    def run(server: RunningServer) -> dict[str, float]:
        url = f"http://127.0.0.1:{server.contender.port}/"
        wrk_load(url, connections=args.connections, duration=args.warmup, warmup=0)
        db_before = process_cpu_seconds(mariadb.pid)
        result = wrk_load(url, connections=args.connections, duration=args.duration, warmup=0, server=server)
        db_cpu = process_cpu_seconds(mariadb.pid) - db_before
        return {
            "requests_per_s": result["requests_per_s"],
            "server_us_per_request": result["server_us_per_request"],
            "db_us_per_request": db_cpu / result["requests"] * 1e6 if result["requests"] else float("nan"),
            "errors": result["errors"],
        }

    return run


def report(samples: dict[str, list[dict[str, float]]], args: Any) -> str:
    middle = medians(samples)
    rows = []
    verdicts = []
    for name, figures in middle.items():
        rate = figures["requests_per_s"]
        suffix = "".join(name.partition("_")[1:])  # the transport: "" or "_unix"
        base = middle.get("short" + suffix)
        ratio = rate / base["requests_per_s"] if base else None
        rows.append(
            [
                name,
                rate,
                f"±{spread([s['requests_per_s'] for s in samples[name]]) * 100:.0f}%",
                f"{ratio:.2f}x" if ratio else "-",
                figures["server_us_per_request"],
                figures["db_us_per_request"],
                int(sum(s["errors"] for s in samples[name])),
            ]
        )
        if name.startswith("pooled") and ratio:
            met = "met" if ratio >= 5 else "NOT met"
            verdicts.append(f"- {name} / short{suffix}: {ratio:.2f}x (target >= 5x: {met})")
    header = [
        "mode",
        "requests/s",
        "spread",
        "vs short (same transport)",
        "worker CPU µs/req",
        "MariaDB CPU µs/req",
        "errors",
    ]
    parameters = {
        "wrk connections": args.connections,
        "pool size": args.pool_size,
        "workers": 1,
        "reps": args.reps,
        "duration s": args.duration,
        "query": f"`{QUERY}`",
    }
    note = (
        "`short` connects to MariaDB for every request and closes after it (the seed's "
        "`coroutine_client.php`); `pooled` shares the worker's pool. Without a suffix the worker reaches "
        "MariaDB over TCP on 127.0.0.1, with `_unix` through its Unix socket (`--mysql-socket`). "
        "Issue 10's target: pooled >= 5x short."
    )
    return "\n\n".join(
        [
            "## HTTP + MySQL: a connection per request vs a pool (bench/bench_db_http.py)",
            environment(
                packages=["asyncmy"],
                tools=[["wrk", "--version"], ["mariadbd", "--version"]],
                parameters=parameters,
            ),
            markdown_table(header, rows),
            "\n".join(verdicts),
            note,
        ]
    )


def main() -> None:
    parser = bench_arguments(__doc__.splitlines()[0], reps=5, duration=5.0)
    parser.add_argument("--connections", type=int, default=50, help="wrk connections")
    parser.add_argument("--pool-size", type=int, default=50, help="connections in the worker's pool")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="pyswoole-bench-mariadb-"))
    mariadb = None
    try:
        with bench_session():
            mariadb = start_mariadb(directory)
            chosen = select(contenders(mariadb, args), args.only)
            samples = alternate(chosen, args.reps, measure(mariadb, args))
    finally:
        if mariadb is not None:
            mariadb.stop()
        shutil.rmtree(directory, ignore_errors=True)
    body = report(samples, args)
    if args.no_write:
        print(body)
    else:
        RESULTS.parent.mkdir(exist_ok=True)
        write_section("db_http", body, path=RESULTS)
        log(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
