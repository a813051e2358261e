"""HTTP on pyswoole's native API: ``/`` -> 13-byte ``Hello, World!`` (text/plain), ``/json`` -> a
1 KiB JSON document, ``/static/...`` -> files under ``--document-root`` (static handler).

The engine's side of bench/bench_http.py, written with the public API only.
"""

from __future__ import annotations

import argparse
import json

import pyswoole
from pyswoole.http import Request, Response, Server

DOCUMENT = json.dumps({"items": [{"id": i, "name": f"item-{i:04d}", "ok": True} for i in range(24)]})[:1024]
JSON_BODY = json.dumps({"data": DOCUMENT})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9604)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--mode", choices=["BASE", "PROCESS"], default="BASE")
    parser.add_argument("--document-root")
    args = parser.parse_args()

    server = Server(args.host, args.port, mode=getattr(pyswoole, args.mode))
    settings = {"worker_num": args.workers, "log_level": pyswoole.LOG_WARNING}
    if args.document_root:
        settings.update(
            {
                "document_root": args.document_root,
                "enable_static_handler": True,
                "static_handler_locations": ["/static"],
            }
        )
    server.set(settings)

    @server.on("request")
    async def on_request(request: Request, response: Response) -> None:
        if request.url == b"/json":
            response.header("Content-Type", "application/json")
            response.end(JSON_BODY)
        else:
            response.header("Content-Type", "text/plain")
            response.end("Hello, World!")

    server.start()


if __name__ == "__main__":
    main()
