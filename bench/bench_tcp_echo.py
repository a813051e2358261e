"""Length-framed TCP echo: pyswoole's Server against a bare uvloop Protocol, in the same run.

Each rep, on a freshly started server pinned to CPU 0: echo_client (pinned to CPU 1) loads it
with 50 connections, one 64-byte message in flight each (4-byte big-endian length prefix), then
the worker's peak RSS is read, then 10,000 idle connections per worker are opened (each after one
echo) and the server's RSS growth per connection is measured. Contenders alternate rep by rep;
the section ``tcp_echo`` of bench/RESULTS.md gets the medians and ratios.

With ``--modes`` (issue 3) the contenders are pyswoole in BASE and PROCESS mode with 1 and 2
workers (all on CPU 0), bare uvloop as the reference, without the idle-connection phase; the
section ``tcp_echo_modes`` gets PROCESS/BASE ratios.

    python3 bench/bench_tcp_echo.py [--reps 7] [--duration 3] [--only bare_uvloop,pyswoole]
    python3 bench/bench_tcp_echo.py --modes [--only base-1w,process-1w]
"""

from __future__ import annotations

import argparse
import statistics

import harness
from harness import BENCH_DIR, Contender, RunningServer, Sample

TARGET_RATIO = 0.9  # pyswoole >= 0.9x the bare uvloop server
TARGET_IDLE_KIB = 3.0  # RSS growth per idle connection
TARGET_PROCESS_RATIO = 0.7  # PROCESS mode >= 0.7x BASE mode
DISTURBED_SPREAD = 0.2  # msg/s reps spread wider than this: judge by CPU cost instead
PYSWOOLE_ECHO = BENCH_DIR / "servers" / "pyswoole_echo.py"


def bare_uvloop() -> Contender:
    return Contender(
        "bare_uvloop", harness.python_server(BENCH_DIR / "bare_uvloop_echo.py", "--port", "18601"), 18601
    )


def pyswoole(name: str, port: int, mode: str = "BASE", workers: int = 1) -> Contender:
    command = harness.python_server(
        PYSWOOLE_ECHO, "--port", str(port), "--mode", mode, "--workers", str(workers)
    )
    return Contender(name, command, port)


def contenders() -> list[Contender]:
    return [bare_uvloop(), pyswoole("pyswoole", 18602)]


def mode_contenders() -> list[Contender]:
    return [
        bare_uvloop(),
        pyswoole("base-1w", 18603, "BASE", 1),
        pyswoole("process-1w", 18604, "PROCESS", 1),
        pyswoole("base-2w", 18605, "BASE", 2),
        pyswoole("process-2w", 18606, "PROCESS", 2),
    ]


def main() -> None:
    parser = harness.bench_arguments(__doc__.splitlines()[0], reps=7, duration=3.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--payload", type=int, default=64, help="bytes per message (after the prefix)")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections per worker (0: skip)")
    parser.add_argument("--modes", action="store_true", help="BASE vs PROCESS mode, 1 and 2 workers")
    args = parser.parse_args()
    workers = 1
    chosen = harness.select(mode_contenders() if args.modes else contenders(), args.only)

    def measure(server: RunningServer) -> Sample:
        load = harness.echo_load(
            server,
            connections=args.connections,
            payload=args.payload,
            duration=args.duration,
            warmup=args.warmup,
        )
        sample = {
            "msg_per_s": load["msg_per_s"],
            "server_us_per_msg": load["server_us_per_msg"],
            "server_cpu_share": load["server_cpu_share"],
            "p50_us": load["p50_us"],
            "p99_us": load["p99_us"],
            "errors": load["errors"] + load["setup_errors"],
            "peak_rss_worker_kib": max(p.peak_rss_kib for p in server.workers()),
        }
        if args.idle and not args.modes:
            workers_before = {p.pid: p.rss_kib for p in server.workers()}
            idle = harness.idle_memory(server, args.idle * workers)
            workers_after = {p.pid: p.rss_kib for p in server.workers()}
            worker_growth = sum(
                workers_after[pid] - rss for pid, rss in workers_before.items() if pid in workers_after
            )
            sample["kib_per_conn"] = idle["kib_per_conn"]
            sample["worker_kib_per_conn"] = worker_growth / idle["connected"]
        return sample

    with harness.bench_session():
        samples = harness.alternate(chosen, args.reps, measure)
    if args.modes:
        harness.publish("tcp_echo_modes", report_modes(samples, args), args.no_write, samples)
    else:
        harness.publish("tcp_echo", report(samples, args, workers), args.no_write, samples)


def verdict(
    samples: dict[str, list[Sample]], names: list[str], ratio: float, cost_ratio: float, target: float
) -> str:
    """Whether a ratio target is met: by msg/s, or by CPU cost when the msg/s reps scatter too much."""
    widest = max(harness.spread([s["msg_per_s"] for s in samples[name]]) for name in names)
    if widest > DISTURBED_SPREAD:
        return (
            f"not judged on msg/s, whose spread (±{widest:.0%}) says the machine was busy; "
            f"by CPU cost {'met' if cost_ratio >= target else 'NOT met'}"
        )
    return "met" if ratio >= target else "NOT met"


def report_modes(samples: dict[str, list[Sample]], args: argparse.Namespace) -> str:
    medians = harness.medians(samples)
    rows = [
        [
            name,
            m["msg_per_s"],
            f"±{harness.spread([s['msg_per_s'] for s in samples[name]]):.0%}",
            m["server_us_per_msg"],
            f"{m['server_cpu_share']:.0%}",
            m["p50_us"],
            m["p99_us"],
            int(sum(s["errors"] for s in samples[name])),
            f"{m['peak_rss_worker_kib'] / 1024:.1f}",
        ]
        for name, m in medians.items()
    ]
    header = ["server", "msg/s", "spread", "CPU µs/msg", "server CPU", "p50 µs", "p99 µs", "errors"]
    header.append("peak RSS per worker MiB")
    parameters = {
        "connections": args.connections,
        "payload bytes": args.payload,
        "in flight per connection": 1,
        "reps": args.reps,
        "seconds per rep": args.duration,
        "warm-up s": args.warmup,
        "all workers on": f"CPU {harness.SERVER_CPU}",
    }
    lines = [
        "## TCP echo, BASE vs PROCESS mode (issue 3)",
        "",
        harness.environment(tools=[["gcc", "--version"]], parameters=parameters),
        "",
        harness.markdown_table(header, rows),
        "",
    ]
    for workers in (1, 2):
        base, process = medians.get(f"base-{workers}w"), medians.get(f"process-{workers}w")
        if base and process:
            ratio = process["msg_per_s"] / base["msg_per_s"]
            cost_ratio = base["server_us_per_msg"] / process["server_us_per_msg"]
            names = [f"base-{workers}w", f"process-{workers}w"]
            lines.append(
                f"- PROCESS / BASE with {workers} worker{'s' if workers > 1 else ''}: {ratio:.2f}x msg/s, "
                f"{cost_ratio:.2f}x by CPU cost; target >= {TARGET_PROCESS_RATIO}x: "
                f"{verdict(samples, names, ratio, cost_ratio, TARGET_PROCESS_RATIO)}"
            )
    lines.append(
        "- msg/s: round trips per second over all connections; CPU µs/msg: CPU time of all the server's "
        "processes (master, manager, workers) per round trip; see the tcp_echo section for the other columns."
    )
    return "\n".join(lines)


def report(samples: dict[str, list[Sample]], args: argparse.Namespace, workers: int) -> str:
    medians = harness.medians(samples)
    base = medians.get("bare_uvloop")

    def versus(value: float, base_value: float | None, higher_is_better: bool = True) -> str:
        if not base_value:
            return "-"
        return f"{value / base_value if higher_is_better else base_value / value:.2f}x"

    speed_rows, memory_rows = [], []
    for name, m in medians.items():
        speed_rows.append(
            [
                name,
                m["msg_per_s"],
                versus(m["msg_per_s"], base and base["msg_per_s"]),
                f"±{harness.spread([s['msg_per_s'] for s in samples[name]]):.0%}",
                m["server_us_per_msg"],
                versus(m["server_us_per_msg"], base and base["server_us_per_msg"], higher_is_better=False),
                f"{m['server_cpu_share']:.0%}",
                m["p50_us"],
                m["p99_us"],
                int(sum(s["errors"] for s in samples[name])),
            ]
        )
        row = [name, f"{m['peak_rss_worker_kib'] / 1024:.1f}"]
        if "kib_per_conn" in m:
            row += [f"{m['kib_per_conn']:.2f}", f"{m['worker_kib_per_conn']:.2f}"]
        memory_rows.append(row)
    speed_header = ["server", "msg/s", "vs bare uvloop", "spread", "CPU µs/msg", "capacity vs bare uvloop"]
    speed_header += ["server CPU", "p50 µs", "p99 µs", "errors"]
    memory_header = ["server", "peak RSS per worker MiB"]
    if args.idle:
        memory_header += [f"RSS growth per idle conn KiB ({args.idle * workers:,} conns)", "of which workers"]
    parameters = {
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
    lines = [
        "## TCP echo, length-framed (issue 2)",
        "",
        harness.environment(tools=[["gcc", "--version"]], parameters=parameters),
        "",
        harness.markdown_table(speed_header, speed_rows),
        "",
        harness.markdown_table(memory_header, memory_rows),
        "",
    ]
    if "pyswoole" in medians and base:
        ours = medians["pyswoole"]
        ratio = ours["msg_per_s"] / base["msg_per_s"]
        per_rep = [
            p["msg_per_s"] / b["msg_per_s"]
            for p, b in zip(samples["pyswoole"], samples["bare_uvloop"], strict=True)
        ]
        best = max(s["msg_per_s"] for s in samples["pyswoole"]) / max(
            s["msg_per_s"] for s in samples["bare_uvloop"]
        )
        cheapest = min(s["server_us_per_msg"] for s in samples["bare_uvloop"]) / min(
            s["server_us_per_msg"] for s in samples["pyswoole"]
        )
        cost_ratio = base["server_us_per_msg"] / ours["server_us_per_msg"]
        judged = verdict(samples, ["pyswoole", "bare_uvloop"], ratio, cost_ratio, TARGET_RATIO)
        lines.append(
            f"- pyswoole / bare uvloop: {ratio:.2f}x msg/s (median of the per-rep ratios "
            f"{statistics.median(per_rep):.2f}x, best rep over best rep {best:.2f}x), "
            f"{cost_ratio:.2f}x by CPU cost (cheapest reps {cheapest:.2f}x; kernel network time is not "
            f"counted, so this is a lower bound); target >= {TARGET_RATIO}x: {judged}"
        )
        if "kib_per_conn" in ours:
            kib = ours["kib_per_conn"]
            lines.append(
                f"- pyswoole RSS growth per idle connection: {kib:.2f} KiB "
                f"(target <= {TARGET_IDLE_KIB} KiB: {'met' if kib <= TARGET_IDLE_KIB else 'NOT met'})"
            )
    lines.append(
        "- msg/s: round trips per second over all connections; spread: half the range of the reps around "
        "the median; CPU µs/msg: the server's CPU time (all its processes) per round trip, warm-up "
        "included; capacity: bare uvloop's CPU µs/msg over the server's (higher is better), a figure that "
        "other work on the machine disturbs far less than msg/s; server CPU: the share of one CPU its processes "
        "used (the kernel's network processing is not counted, so it stays well under 100% even when "
        "the server is saturated; a share that varies a lot between reps means a disturbed run); "
        "RSS growth per idle connection: of the whole process tree (and of the workers alone), "
        "divided by the connections held, each of which completed one echo first."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
