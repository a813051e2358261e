"""Length-framed TCP echo: pyswoole's Server against a bare uvloop Protocol, in the same run.

Each rep, on a freshly started server pinned to CPU 0: echo_client (pinned to CPU 1) loads it
with 50 connections, one 64-byte message in flight each (4-byte big-endian length prefix), then
the worker's peak RSS is read, then 10,000 idle connections per worker are opened (each after one
echo) and the server's RSS growth per connection is measured. Contenders alternate rep by rep;
the section ``tcp_echo`` of bench/RESULTS.md gets the medians and ratios.

    python3 bench/bench_tcp_echo.py [--reps 5] [--duration 5] [--only bare_uvloop,pyswoole]
"""

from __future__ import annotations

import argparse
import statistics

import harness
from harness import BENCH_DIR, Contender, RunningServer, Sample

TARGET_RATIO = 0.9  # pyswoole >= 0.9x the bare uvloop server
TARGET_IDLE_KIB = 3.0  # RSS growth per idle connection


def contenders(workers: int) -> list[Contender]:
    return [
        Contender(
            "bare_uvloop", harness.python_server(BENCH_DIR / "bare_uvloop_echo.py", "--port", "18601"), 18601
        ),
        Contender(
            "pyswoole",
            harness.python_server(
                BENCH_DIR / "servers" / "pyswoole_echo.py", "--port", "18602", "--workers", str(workers)
            ),
            18602,
        ),
    ]


def main() -> None:
    parser = harness.bench_arguments(__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--payload", type=int, default=64, help="bytes per message (after the prefix)")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections per worker (0: skip)")
    args = parser.parse_args()
    workers = 1
    chosen = harness.select(contenders(workers), args.only)

    def measure(server: RunningServer) -> Sample:
        load = harness.echo_load(
            server.contender.port,
            connections=args.connections,
            payload=args.payload,
            duration=args.duration,
            warmup=args.warmup,
        )
        sample = {
            "msg_per_s": load["msg_per_s"],
            "p50_us": load["p50_us"],
            "p99_us": load["p99_us"],
            "errors": load["errors"] + load["setup_errors"],
            "peak_rss_worker_kib": max(p.peak_rss_kib for p in server.workers()),
        }
        if args.idle:
            workers_before = {p.pid: p.rss_kib for p in server.workers()}
            idle = harness.idle_memory(server, args.idle * workers)
            workers_after = {p.pid: p.rss_kib for p in server.workers()}
            worker_growth = sum(
                workers_after[pid] - rss for pid, rss in workers_before.items() if pid in workers_after
            )
            sample["kib_per_conn"] = idle["kib_per_conn"]
            sample["worker_kib_per_conn"] = worker_growth / idle["connected"]
            sample["idle_connected"] = idle["connected"]
        return sample

    with harness.bench_session():
        samples = harness.alternate(chosen, args.reps, measure)
    harness.publish("tcp_echo", report(samples, args, workers), args.no_write)


def report(samples: dict[str, list[Sample]], args: argparse.Namespace, workers: int) -> str:
    medians = harness.medians(samples)
    baseline = medians.get("bare_uvloop", {}).get("msg_per_s")
    rows = []
    for name, figures in medians.items():
        rates = [s["msg_per_s"] for s in samples[name]]
        row = [
            name,
            figures["msg_per_s"],
            f"{figures['msg_per_s'] / baseline:.2f}x" if baseline else "-",
            f"±{harness.spread(rates):.0%}",
            figures["p50_us"],
            figures["p99_us"],
            int(sum(s["errors"] for s in samples[name])),
            f"{figures['peak_rss_worker_kib'] / 1024:.1f}",
        ]
        if "kib_per_conn" in figures:
            row += [f"{figures['kib_per_conn']:.2f}", f"{figures['worker_kib_per_conn']:.2f}"]
        rows.append(row)
    header = [
        "server",
        "msg/s",
        "vs bare uvloop",
        "spread",
        "p50 µs",
        "p99 µs",
        "errors",
        "peak RSS/worker MiB",
    ]
    if rows and len(rows[0]) > len(header):
        header += ["RSS KiB per idle conn", "of which worker"]
    lines = [
        "## TCP echo, length-framed (issue 2)",
        "",
        harness.environment(
            parameters={
                "connections": args.connections,
                "payload bytes": args.payload,
                "in flight per connection": 1,
                "workers": workers,
                "mode": "BASE",
                "reps": args.reps,
                "seconds per rep": args.duration,
                "warm-up s": args.warmup,
                "idle connections per worker": args.idle,
            }
        ),
        "",
        harness.markdown_table(header, rows),
        "",
    ]
    if "pyswoole" in medians and baseline:
        ratios = [
            p["msg_per_s"] / b["msg_per_s"]
            for p, b in zip(samples["pyswoole"], samples["bare_uvloop"], strict=True)
        ]
        ratio = medians["pyswoole"]["msg_per_s"] / baseline
        lines.append(
            f"- pyswoole / bare uvloop: {ratio:.2f}x (median of per-rep ratios {statistics.median(ratios):.2f}x; "
            f"target >= {TARGET_RATIO}x: {'met' if ratio >= TARGET_RATIO else 'NOT met'})"
        )
        if "kib_per_conn" in medians["pyswoole"]:
            kib = medians["pyswoole"]["kib_per_conn"]
            lines.append(
                f"- pyswoole RSS growth per idle connection: {kib:.2f} KiB "
                f"(target <= {TARGET_IDLE_KIB} KiB: {'met' if kib <= TARGET_IDLE_KIB else 'NOT met'})"
            )
    lines.append(
        "- msg/s: round trips per second over all connections; spread: half the range of the reps "
        "around the median; RSS per idle connection: growth of the whole process tree divided by the "
        "connections held (each completed one echo first)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
