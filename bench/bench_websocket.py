"""WebSocket: echo rate against websockets, picows and aiohttp; broadcast to 10,000 clients over
2 workers; memory per idle WebSocket connection.

Each rep, on freshly started servers pinned to CPU 0 (load generator on CPU 1):

* echo: echo_client ``--mode ws`` with 50 connections, one masked 64-byte text message in flight
  each, the reply must be the same text; 1 worker (pyswoole in BASE mode), all on uvloop;
* idle memory: the server tree's RSS growth per idle WebSocket connection (each after one echo);
* broadcast (pyswoole only, PROCESS mode, 2 workers): 10,000 WebSocket clients; one of them sends
  a message and the server sends it to every connection (``Server.broadcast``: one encoding,
  routed to the other worker's connections over IPC); time from the send to the last delivery.

The servers are in this file (``--serve NAME``), written the way each library documents.
Writes bench/results/websocket.md.

    python3 bench/bench_websocket.py [--reps 5] [--duration 3] [--only pyswoole,picows]
        [--idle 5000] [--broadcast-clients 10000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import harness
from harness import Contender, RunningServer, Sample

SCRIPT = Path(__file__).resolve()
RESULTS = SCRIPT.parent / "results" / "websocket.md"
PORTS = {"pyswoole": 18631, "websockets": 18632, "picows": 18633, "aiohttp": 18634}
BROADCAST_PORT = 18635
TARGET_VS_PICOWS = 0.9
TARGET_VS_WEBSOCKETS = 2.5
TARGET_IDLE_KIB = 4.0


# -- the servers ------------------------------------------------------------------------------
def serve_pyswoole(port: int, workers: int, broadcast: bool) -> None:
    import pyswoole
    from pyswoole.websocket import Frame, Server

    server = Server("127.0.0.1", port, pyswoole.PROCESS if broadcast else pyswoole.BASE)
    server.set({"worker_num": workers, "max_conn": 65536, "log_level": 4})

    if broadcast:

        @server.on("message")
        def on_message(server: Server, frame: Frame) -> None:
            server.broadcast(None, frame.data, frame.opcode)

    else:

        @server.on("message")
        def on_message(server: Server, frame: Frame) -> None:
            server.push(frame.fd, frame.data, frame.opcode)

    server.start()


def serve_websockets(port: int) -> None:

    import uvloop
    from websockets.asyncio.server import serve

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with serve(echo, "127.0.0.1", port, compression=None, max_queue=None) as server:
            await server.serve_forever()

    uvloop.run(main())


def serve_picows(port: int) -> None:
    import asyncio

    import uvloop
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

    class Echo(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            else:
                transport.send(frame.msg_type, frame.get_payload_as_memoryview())

    async def main() -> None:
        server = await ws_create_server(lambda _request: Echo(), "127.0.0.1", port)
        await server.serve_forever()

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main())


def serve_aiohttp(port: int) -> None:
    import uvloop
    from aiohttp import WSMsgType, web

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str(message.data)
            elif message.type == WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws

    app = web.Application()
    app.router.add_get("/", echo)
    web.run_app(app, host="127.0.0.1", port=port, print=None, loop=uvloop.new_event_loop())


def serve(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name", choices=sorted(PORTS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--broadcast", action="store_true")
    args = parser.parse_args(argv)
    if args.name == "pyswoole":
        serve_pyswoole(args.port, args.workers, args.broadcast)
    else:
        {"websockets": serve_websockets, "picows": serve_picows, "aiohttp": serve_aiohttp}[args.name](
            args.port
        )


# -- the bench ---------------------------------------------------------------------------------
def contender(name: str, port: int, *extra: str) -> Contender:
    return Contender(name, harness.python_server(SCRIPT, "--serve", name, "--port", str(port), *extra), port)


def main() -> None:
    parser = harness.bench_arguments(__doc__.splitlines()[0], reps=5, duration=3.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--payload", type=int, default=64)
    parser.add_argument(
        "--idle", type=int, default=5000, help="idle connections for the memory figure (0: skip)"
    )
    parser.add_argument("--broadcast-clients", type=int, default=10_000, help="0: skip the broadcast")
    parser.add_argument("--rounds", type=int, default=10, help="broadcast rounds per rep")
    args = parser.parse_args()
    chosen = harness.select([contender(name, port) for name, port in PORTS.items()], args.only)

    def measure_echo(server: RunningServer) -> Sample:
        load = harness.echo_load(
            server,
            mode="ws",
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
        }
        if args.idle:
            sample["kib_per_conn"] = harness.idle_memory(server, args.idle, mode="ws")["kib_per_conn"]
        return sample

    broadcaster = contender("pyswoole", BROADCAST_PORT, "--workers", "2", "--broadcast")

    def measure_broadcast(server: RunningServer) -> Sample:
        result = harness.broadcast_load(
            BROADCAST_PORT, connections=args.broadcast_clients, rounds=args.rounds, payload=args.payload
        )
        return {
            "median_ms": result["median_ms"],
            "max_ms": result["max_ms"],
            "first_median_ms": result["first_median_ms"],
            "errors": result.get("errors", 0),
        }

    with harness.bench_session(nice=args.nice, revision=args.revision):
        echo = harness.alternate(chosen, args.reps, measure_echo)
        broadcast = {}
        if args.broadcast_clients and any(c.name == "pyswoole" for c in chosen):
            broadcast = harness.alternate([broadcaster], max(1, args.reps // 2), measure_broadcast)
    body = report(echo, broadcast, args)
    harness.OUT_DIR.mkdir(parents=True, exist_ok=True)
    (harness.OUT_DIR / "websocket.json").write_text(
        json.dumps({**echo, "broadcast": broadcast.get("pyswoole", [])})
    )
    if args.no_write:
        print(body)
    else:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text("# WebSocket benchmarks\n\nWritten by `bench/bench_websocket.py`.\n\n" + body)
        harness.log(f"wrote {RESULTS}")


def report(
    echo: dict[str, list[Sample]], broadcast: dict[str, list[Sample]], args: argparse.Namespace
) -> str:
    medians = harness.medians(echo)
    picows = medians.get("picows")
    rows = []
    for name, m in medians.items():
        rows.append(
            [
                name,
                m["msg_per_s"],
                f"{m['msg_per_s'] / picows['msg_per_s']:.2f}x" if picows else "-",
                f"±{harness.spread([s['msg_per_s'] for s in echo[name]]):.0%}",
                m["server_us_per_msg"],
                f"{m['server_cpu_share']:.0%}",
                m["p50_us"],
                m["p99_us"],
                f"{m['kib_per_conn']:.2f}" if "kib_per_conn" in m else "-",
                int(sum(s["errors"] for s in echo[name])),
            ]
        )
    header = ["server", "msg/s", "vs picows", "spread", "CPU µs/msg", "server CPU", "p50 µs", "p99 µs"]
    header += [f"KiB per idle conn ({args.idle:,})", "errors"]
    parameters = {
        "connections": args.connections,
        "payload bytes": args.payload,
        "in flight per connection": 1,
        "workers": 1,
        "reps": args.reps,
        "seconds per rep": args.duration,
        "warm-up s": args.warmup,
    }
    lines = [
        "## WebSocket echo, broadcast, idle memory (issue 5)",
        "",
        harness.environment(
            packages=["websockets", "picows", "aiohttp", "uvloop"],
            tools=[["gcc", "--version"]],
            parameters=parameters,
        ),
        "",
        harness.markdown_table(header, rows),
        "",
    ]
    ours = medians.get("pyswoole")
    if ours:
        for name, target in (("picows", TARGET_VS_PICOWS), ("websockets", TARGET_VS_WEBSOCKETS)):
            other = medians.get(name)
            if other:
                ratio = ours["msg_per_s"] / other["msg_per_s"]
                cost = other["server_us_per_msg"] / ours["server_us_per_msg"]
                verdict = "met" if ratio >= target else "not met"
                lines.append(
                    f"- pyswoole / {name}: {ratio:.2f}x msg/s, {cost:.2f}x by CPU cost per message "
                    f"(target >= {target}x: {verdict})"
                )
        if "kib_per_conn" in ours:
            verdict = "met" if ours["kib_per_conn"] < TARGET_IDLE_KIB else "not met"
            lines.append(
                f"- memory per idle WebSocket connection: {ours['kib_per_conn']:.2f} KiB "
                f"(target < {TARGET_IDLE_KIB} KiB: {verdict})"
            )
    samples = broadcast.get("pyswoole")
    if samples:
        m = harness.medians({"pyswoole": samples})["pyswoole"]
        lines += [
            "",
            f"Broadcast: {args.broadcast_clients:,} WebSocket clients over 2 workers (PROCESS mode), "
            f"{args.rounds} rounds per rep, {len(samples)} reps: one client sends {args.payload} bytes, "
            "the server sends them to every connection.",
            "",
            harness.markdown_table(
                [
                    "server",
                    "median ms to the last client",
                    "max ms",
                    "median ms to the first client",
                    "errors",
                ],
                [
                    [
                        "pyswoole",
                        m["median_ms"],
                        m["max_ms"],
                        m["first_median_ms"],
                        int(sum(s["errors"] for s in samples)),
                    ]
                ],
            ),
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2:])
    else:
        main()
