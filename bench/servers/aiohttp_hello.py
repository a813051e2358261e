"""aiohttp answering ``Hello, World!`` (13 bytes, text/plain) on uvloop, for bench/bench_http.py."""

from __future__ import annotations

import argparse

import uvloop
from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.Response(body=b"Hello, World!", content_type="text/plain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9605)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/", hello)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
