"""Length-framed TCP echo in PROCESS mode against BASE mode, with 1 and 2 workers (issue 3).

Same load as bench_tcp_echo.py (echo_client, 50 connections, one 64-byte message in flight each),
server processes pinned to CPU 0 and the load generator to CPU 1, contenders alternated rep by
rep. In PROCESS mode the master accepts and passes each connection to a worker, which then owns
the socket: the per-message path is BASE mode's, so the ratio shows what the process model costs.

    python3 bench/bench_process_mode.py [--reps 5] [--duration 3]
"""

from __future__ import annotations

import harness
from harness import BENCH_DIR, Contender, RunningServer, Sample

TARGET_RATIO = 0.7  # PROCESS >= 0.7x BASE


def contenders() -> list[Contender]:
    chosen = []
    for index, (mode, workers) in enumerate((("BASE", 1), ("PROCESS", 1), ("BASE", 2), ("PROCESS", 2))):
        port = 18650 + index
        command = harness.python_server(
            BENCH_DIR / "servers" / "pyswoole_echo.py", "--port", str(port), "--workers", str(workers), "--mode", mode
        )
        chosen.append(Contender(f"{mode} {workers} worker{'s' if workers > 1 else ''}", command, port))
    return chosen


def main() -> None:
    parser = harness.bench_arguments(__doc__.splitlines()[0], reps=5, duration=3.0)
    args = parser.parse_args()
    chosen = harness.select(contenders(), args.only)

    def measure(server: RunningServer) -> Sample:
        load = harness.echo_load(server, connections=50, payload=64, duration=args.duration, warmup=args.warmup)
        return {
            "msg_per_s": load["msg_per_s"],
            "server_us_per_msg": load["server_us_per_msg"],
            "errors": load["errors"] + load["setup_errors"],
        }

    with harness.bench_session(nice=args.nice, revision=args.revision):
        samples = harness.alternate(chosen, args.reps, measure)
    medians = harness.medians(samples)
    rows = []
    for name, m in medians.items():
        base = medians.get(name.replace("PROCESS", "BASE"))
        rows.append(
            [
                name,
                m["msg_per_s"],
                f"{m['msg_per_s'] / base['msg_per_s']:.2f}x" if base else "-",
                f"±{harness.spread([s['msg_per_s'] for s in samples[name]]):.0%}",
                m["server_us_per_msg"],
                f"{base['server_us_per_msg'] / m['server_us_per_msg']:.2f}x" if base else "-",
                int(sum(s["errors"] for s in samples[name])),
            ]
        )
    body = "\n".join(
        [
            "## PROCESS mode against BASE mode, length-framed TCP echo (issue 3)",
            "",
            harness.environment(
                parameters={"connections": 50, "payload bytes": 64, "reps": args.reps, "seconds per rep": args.duration}
            ),
            "",
            harness.markdown_table(
                ["server", "msg/s", "vs BASE", "spread", "CPU µs/msg", "capacity vs BASE", "errors"], rows
            ),
            "",
            f"- Target: PROCESS >= {TARGET_RATIO}x BASE. CPU µs/msg counts every process of the server "
            "(the master's accept work included); capacity is BASE's CPU cost per message over PROCESS's.",
        ]
    )
    harness.publish("process_mode", body, args.no_write, samples)


if __name__ == "__main__":
    main()
