"""RESP server: examples/kv_server.py on 1 worker against redis-server, with redis-benchmark.

Each rep, on a freshly started server pinned to CPU 0: ``redis-benchmark -t ping,set,get,incr
-c 50 -n 200000`` (pinned to CPU 1) with ``-P 1`` and then ``-P 16``. redis-server runs without
persistence (``--save '' --appendonly no``). Contenders alternate rep by rep; the section ``redis``
of bench/RESULTS.md gets the medians and the ratios to redis-server (targets: >= 0.8x at ``-P 1``,
>= 0.3x at ``-P 16``).

``--parsers`` instead measures the request parsers on pipelined small commands, in this process:
hiredis' C Reader (what ``pyswoole.protocol.resp`` uses) against the fastest pure-Python parser
we could write (below), in CPU ns per command (section ``redis_parsers``).

    python3 bench/bench_redis.py [--reps 3] [--requests 200000] [--only kv_server,redis-server]
    python3 bench/bench_redis.py --parsers
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time

import harness
from harness import REPO_DIR, Contender, RunningServer, Sample

PIPELINES = (1, 16)
TARGETS = {1: 0.8, 16: 0.3}


def contenders() -> list[Contender]:
    redis_server = shutil.which("redis-server") or "redis-server"
    return [
        Contender(
            "kv_server",
            harness.python_server(
                REPO_DIR / "examples" / "kv_server.py",
                "--host",
                "127.0.0.1",
                "--port",
                "18681",
                "--workers",
                "1",
            ),
            18681,
        ),
        Contender(
            "redis-server",
            [redis_server, "--port", "18682", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            18682,
        ),
    ]


def run_servers(args: argparse.Namespace) -> None:
    chosen = harness.select(contenders(), args.only)

    def measure(server: RunningServer) -> Sample:
        sample: Sample = {}
        for pipeline in PIPELINES:
            cpu_before = server.cpu_seconds()
            rates = harness.redis_benchmark_load(
                server.contender.port, connections=50, requests=args.requests, pipeline=pipeline
            )
            cpu = server.cpu_seconds() - cpu_before
            for test, rate in rates.items():
                sample[f"{test} P{pipeline}"] = rate
            sample[f"CPU µs/request P{pipeline}"] = cpu / (len(rates) * args.requests) * 1e6
        return sample

    with harness.bench_session():
        samples = harness.alternate(chosen, args.reps, measure)
    medians = harness.medians(samples)
    names = list(medians)
    tests = [test for test in medians[names[0]] if not test.startswith("CPU")]
    cpu_keys = [f"CPU µs/request P{pipeline}" for pipeline in PIPELINES]
    header = ["test", *[f"{name} req/s" for name in names]]
    baseline = medians.get("redis-server")
    if baseline and "kv_server" in medians:
        header += ["kv_server / redis-server", "target"]
    rows = []
    for test in tests:
        row: list = [test, *[medians[name][test] for name in names]]
        if len(header) > len(row):
            pipeline = int(test.rsplit("P", 1)[1])
            row += [f"{medians['kv_server'][test] / baseline[test]:.2f}x", f">= {TARGETS[pipeline]}x"]
        rows.append(row)
    cpu_header = ["server CPU per request", *[f"{name} µs" for name in names]]
    cpu_rows = []
    for key in cpu_keys:
        row = [f"-P {key.rsplit('P', 1)[1]}", *[medians[name][key] for name in names]]
        if baseline and "kv_server" in medians:
            row.append(f"{baseline[key] / medians['kv_server'][key]:.2f}x")
        cpu_rows.append(row)
    if baseline and "kv_server" in medians:
        cpu_header.append("capacity kv_server / redis-server")
    spreads = ", ".join(
        f"{name} ±{statistics.median(harness.spread([s[t] for s in samples[name]]) for t in tests):.0%}"
        for name in names
    )
    body = "\n\n".join(
        [
            "## Redis protocol: kv_server (1 worker) vs redis-server (issue 8)",
            harness.environment(
                packages=["hiredis"],
                tools=[["redis-server", "--version"], ["redis-benchmark", "--version"]],
                parameters={
                    "connections": 50,
                    "requests": args.requests,
                    "pipelines": "1 and 16",
                    "reps": args.reps,
                    "kv_server workers": 1,
                },
            ),
            harness.markdown_table(header, rows),
            harness.markdown_table(cpu_header, cpu_rows),
            f"Median spread over reps: {spreads}. `PING_INLINE` sends inline commands (`PING\\r\\n`), "
            "the others multibulk requests. Server CPU per request: CPU time of the server's whole "
            "process tree over the requests of all five tests; capacity: redis-server's CPU per request "
            "over kv_server's, a figure that other work on the machine disturbs far less than req/s.",
        ]
    )
    harness.publish("redis", body, args.no_write)


# -- parsers ------------------------------------------------------------------------------------


class PurePythonParser:
    """Multibulk requests in pure Python: one split per read, then a walk over the tokens; a value
    holding CRLF (rare) falls back to slicing by the declared length."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[list[bytes]]:
        buffer = self.buffer + data if self.buffer else data
        tokens = buffer.split(b"\r\n")
        commands, i, last, consumed = [], 0, len(tokens) - 1, 0
        while i < last:
            count = int(tokens[i][1:])
            end = i + 1 + 2 * count
            if end > last:
                break
            args = tokens[i + 2 : end : 2]
            if any(
                len(arg) != int(size[1:]) for arg, size in zip(args, tokens[i + 1 : end : 2], strict=True)
            ):
                return self._slow(buffer, consumed, commands)
            consumed += sum(len(t) + 2 for t in tokens[i:end])
            commands.append(args)
            i = end
        self.buffer = buffer[consumed:]
        return commands

    def _slow(self, buffer: bytes, pos: int, commands: list[list[bytes]]) -> list[list[bytes]]:
        mark = pos
        try:
            while pos < len(buffer):
                end = buffer.index(b"\r\n", pos)
                count, pos, args = int(buffer[pos + 1 : end]), end + 2, []
                for _ in range(count):
                    end = buffer.index(b"\r\n", pos)
                    size = int(buffer[pos + 1 : end])
                    if end + 4 + size > len(buffer):
                        raise ValueError
                    args.append(buffer[end + 2 : end + 2 + size])
                    pos = end + 4 + size
                commands.append(args)
                mark = pos
        except ValueError:
            pos = mark
        self.buffer = buffer[pos:]
        return commands


def run_parsers(args: argparse.Namespace) -> None:
    from pyswoole.protocol.resp import RequestParser

    def request(*parts: bytes) -> bytes:
        return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)

    cases = [
        ("SET key:__rand_int__ xxx", request(b"SET", b"key:__rand_int__", b"xxx")),
        ("GET key:__rand_int__", request(b"GET", b"key:__rand_int__")),
        ("PING", request(b"PING")),
    ]
    rows = []
    for label, one in cases:
        for depth in PIPELINES:
            data = one * depth
            figures = []
            for make in (RequestParser, PurePythonParser):
                parser = make()
                assert len(parser.feed(data)) == depth
                loops = max(200_000 // depth, 1)
                times = []
                for _ in range(args.reps):
                    started = time.process_time()
                    for _ in range(loops):
                        parser.feed(data)
                    times.append((time.process_time() - started) / (loops * depth) * 1e9)
                figures.append(statistics.median(times))
            rows.append([label, depth, *figures, f"{figures[1] / figures[0]:.1f}x"])
            harness.log(f"{label} -P {depth}: hiredis {figures[0]:.0f} ns, pure Python {figures[1]:.0f} ns")
    body = "\n\n".join(
        [
            "## RESP request parsers, CPU ns per command (issue 8)",
            harness.environment(packages=["hiredis"], parameters={"reps": args.reps}),
            harness.markdown_table(
                ["command", "pipelined", "hiredis Reader", "pure Python", "pure Python / hiredis"], rows
            ),
        ]
    )
    harness.publish("redis_parsers", body, args.no_write)


def main() -> None:
    parser = harness.bench_arguments(__doc__.splitlines()[0], reps=3)
    parser.add_argument("--requests", type=int, default=200_000, help="redis-benchmark -n")
    parser.add_argument("--parsers", action="store_true", help="measure the request parsers instead")
    args = parser.parse_args()
    if args.parsers:
        run_parsers(args)
    else:
        run_servers(args)


if __name__ == "__main__":
    main()
