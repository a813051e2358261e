"""Length-framed TCP echo on pyswoole's Server (4-byte big-endian length prefix, echoed whole).

The engine's side of bench/bench_tcp_echo.py, written with the public API only.
"""

from __future__ import annotations

import argparse

import pyswoole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9603)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--mode", choices=["BASE", "PROCESS"], default="BASE")
    args = parser.parse_args()

    server = pyswoole.Server(args.host, args.port, mode=getattr(pyswoole, args.mode))
    server.set(
        {
            "worker_num": args.workers,
            "open_length_check": True,
            "package_length_type": "N",
            "package_length_offset": 0,
            "package_body_offset": 4,
        }
    )

    @server.on("receive")
    def on_receive(server: pyswoole.Server, fd: int, reactor_id: int, data: bytes) -> None:
        server.send(fd, data)

    server.start()


if __name__ == "__main__":
    main()
