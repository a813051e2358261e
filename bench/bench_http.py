"""HTTP/1.1 hello world: pyswoole's native API and ``pyswoole serve`` (ASGI) against a bare
uvloop+httptools server, uvicorn, granian (RSGI and ASGI) and aiohttp, in the same run.

Each rep, on a freshly started server (1 worker, pinned to CPU 0), wrk (pinned to CPU 1) runs
``GET /`` (13-byte text/plain body, keep-alive) with 50 and 256 connections and with 50
connections pipelining 16 requests; the pyswoole native servers also answer a 1 KiB JSON body
and a 100 KiB static file. Then the worker's RSS is read. Contenders alternate rep by rep; the
section ``http`` of bench/RESULTS.md gets the medians and ratios.

    python3 bench/bench_http.py [--reps 5] [--duration 5] [--only bare_uvloop,pyswoole]
"""

from __future__ import annotations

import argparse
import os
import sys

import harness
from harness import BENCH_DIR, Contender, RunningServer, Sample

SERVERS = BENCH_DIR / "servers"
STATIC_ROOT = harness.OUT_DIR / "http_static"
STATIC_SIZE = 100 * 1024
TARGET_NATIVE = 0.9  # pyswoole native >= 0.9x bare uvloop
TARGET_ASGI = 1.3  # pyswoole serve >= 1.3x granian ASGI
TARGET_PROCESS = 0.7  # PROCESS mode >= 0.7x BASE
SCENARIOS = [("c50", "/", 50, 1), ("c256", "/", 256, 1), ("p16", "/", 50, 16)]
NATIVE_EXTRAS = [("json_1k", "/json", 50, 1), ("static_100k", "/static/100k.bin", 50, 1)]


def ready_http(path: str = "/") -> object:
    return harness.answers(harness.http_get(path), b"HTTP/1.1 200")


def contenders() -> list[Contender]:
    app_env = {"PYTHONPATH": str(SERVERS)}
    python = sys.executable
    native = SERVERS / "pyswoole_http.py"
    return [
        Contender(
            "bare_uvloop", harness.python_server(BENCH_DIR / "bare_uvloop_http.py", "--port", "18621"), 18621
        ),
        Contender(
            "pyswoole",
            harness.python_server(native, "--port", "18622", "--document-root", str(STATIC_ROOT)),
            18622,
            ready=ready_http(),
        ),
        Contender(
            "pyswoole_process",
            harness.python_server(
                native, "--port", "18623", "--mode", "PROCESS", "--document-root", str(STATIC_ROOT)
            ),
            18623,
            ready=ready_http(),
        ),
        Contender(
            "pyswoole_serve_asgi",
            [
                python,
                "-m",
                "pyswoole.cli.serve",
                "asgi_hello:app",
                "--port",
                "18624",
                "--lifespan",
                "off",
                "--ws",
                "none",
            ],
            18624,
            ready=ready_http(),
            env=app_env,
        ),
        Contender(
            "uvicorn",
            [
                python,
                "-m",
                "uvicorn",
                "asgi_hello:app",
                "--port",
                "18625",
                "--http",
                "httptools",
                "--loop",
                "uvloop",
                "--log-level",
                "warning",
                "--no-access-log",
                "--lifespan",
                "off",
            ],
            18625,
            ready=ready_http(),
            env=app_env,
        ),
        Contender(
            "granian_rsgi",
            [
                python,
                "-m",
                "granian",
                "--interface",
                "rsgi",
                "--port",
                "18626",
                "--workers",
                "1",
                "--runtime-threads",
                "1",
                "--log-level",
                "warning",
                "asgi_hello:rsgi_app",
            ],
            18626,
            ready=ready_http(),
            env=app_env,
        ),
        Contender(
            "granian_asgi",
            [
                python,
                "-m",
                "granian",
                "--interface",
                "asgi",
                "--port",
                "18627",
                "--workers",
                "1",
                "--runtime-threads",
                "1",
                "--log-level",
                "warning",
                "--no-ws",
                "asgi_hello:app",
            ],
            18627,
            ready=ready_http(),
            env=app_env,
        ),
        Contender("aiohttp", harness.python_server(SERVERS / "aiohttp_hello.py", "--port", "18628"), 18628),
    ]


def make_static_root() -> None:
    target = STATIC_ROOT / "static" / "100k.bin"
    if not target.exists() or target.stat().st_size != STATIC_SIZE:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(os.urandom(STATIC_SIZE))


def main() -> None:
    parser = harness.bench_arguments(__doc__.splitlines()[0])
    args = parser.parse_args()
    make_static_root()
    chosen = harness.select(contenders(), args.only)

    def measure(server: RunningServer) -> Sample:
        sample: Sample = {}
        name = server.contender.name
        scenarios = SCENARIOS + (NATIVE_EXTRAS if name in ("pyswoole", "pyswoole_process") else [])
        for key, path, connections, pipeline in scenarios:
            load = harness.wrk_load(
                f"http://127.0.0.1:{server.contender.port}{path}",
                connections=connections,
                pipeline=pipeline,
                duration=args.duration,
                warmup=args.warmup,
                server=server,
            )
            sample[f"{key}_rps"] = load["requests_per_s"]
            sample[f"{key}_us"] = load["server_us_per_request"]
            sample[f"{key}_errors"] = load["errors"]
        sample["worker_rss_kib"] = max(p.rss_kib for p in server.workers())
        return sample

    with harness.bench_session():
        samples = harness.alternate(chosen, args.reps, measure)
    harness.publish("http", report(samples, args), args.no_write)


def _ratio(medians: dict[str, Sample], a: str, b: str, key: str) -> float | None:
    if a in medians and b in medians and medians[b].get(key):
        return medians[a][key] / medians[b][key]
    return None


def report(samples: dict[str, list[Sample]], args: argparse.Namespace) -> str:
    medians = harness.medians(samples)
    base = medians.get("bare_uvloop", {})
    rows = []
    for name, m in medians.items():
        row: list[object] = [name]
        for key, *_ in SCENARIOS:
            rps = m[f"{key}_rps"]
            ratio = f" ({rps / base[f'{key}_rps']:.2f}x)" if base.get(f"{key}_rps") else ""
            row.append(f"{rps:,.0f}{ratio}")
            row.append(f"{m[f'{key}_us']:.1f}")
        row.append(f"±{harness.spread([s['c50_rps'] for s in samples[name]]):.0%}")
        row.append(int(sum(s[f"{k}_errors"] for s in samples[name] for k, *_ in SCENARIOS)))
        row.append(f"{m['worker_rss_kib'] / 1024:.1f}")
        rows.append(row)
    header = ["server"]
    for key, *_ in SCENARIOS:
        header += [f"{key} req/s (vs bare)", f"{key} server µs/req"]
    header += ["c50 spread", "errors", "worker RSS MiB"]
    extra_rows = []
    for name in ("pyswoole", "pyswoole_process"):
        if name in medians and "json_1k_rps" in medians[name]:
            m = medians[name]
            extra_rows.append(
                [
                    name,
                    f"{m['json_1k_rps']:,.0f}",
                    f"{m['json_1k_us']:.1f}",
                    f"{m['static_100k_rps']:,.0f}",
                    f"{m['static_100k_us']:.1f}",
                ]
            )
    lines = [
        "## HTTP hello world (issue 4)",
        "",
        harness.environment(
            packages=["uvicorn", "granian", "aiohttp", "httptools", "uvloop"],
            tools=[["wrk", "-v"]],
            parameters={
                "workers": 1,
                "reps": args.reps,
                "seconds per rep": args.duration,
                "warm-up s": args.warmup,
                "scenarios": "c50: 50 connections; c256: 256; p16: 50 connections pipelining 16",
            },
        ),
        "",
        harness.markdown_table(header, rows),
        "",
    ]
    if extra_rows:
        lines += [
            harness.markdown_table(
                ["server", "1 KiB JSON req/s", "server µs/req", "100 KiB static req/s", "server µs/req"],
                extra_rows,
            ),
            "",
        ]
    checks = [
        ("pyswoole / bare uvloop", "pyswoole", "bare_uvloop", TARGET_NATIVE),
        ("pyswoole serve (ASGI) / granian ASGI", "pyswoole_serve_asgi", "granian_asgi", TARGET_ASGI),
        ("PROCESS / BASE", "pyswoole_process", "pyswoole", TARGET_PROCESS),
    ]
    for label, a, b, target in checks:
        for key, *_ in SCENARIOS:
            ratio = _ratio(medians, a, b, f"{key}_rps")
            if ratio is not None:
                verdict = "met" if ratio >= target else "NOT met"
                lines.append(f"- {label}, {key}: {ratio:.2f}x (target >= {target}x: {verdict})")
        cost = _ratio(medians, a, b, "c50_us")
        if cost is not None:
            lines.append(f"- {label}, server CPU per request at c50: {cost:.2f}x")
    lines.append(
        "- req/s: medians of the reps; server µs/req: CPU time of the server's whole process tree per "
        "request (the figure least disturbed by other load on the machine); RSS: the worker after the load."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
