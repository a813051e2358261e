"""Port of ``co_chan.php`` (server side): each request makes two upstream HTTP requests at once,
in two child coroutines, and gathers their status codes through a ``Channel``.

Run: ``python3 examples/co_chan.py [--host 0.0.0.0] [--port 9501]
[--upstream https://www.mi360.cn/ --upstream https://www.qq.com/]``, then
``curl http://127.0.0.1:9501/`` -> ``{"www.qq.com": 200, "www.mi360.cn": 301}``.

As in the original: BASE mode; ``Chan(2)``; each child sends ``GET /`` with the original's
``User-Agent``/``Accept``/``Accept-Encoding`` headers and a 3 s timeout, then pushes
``{host: status}``; the parent pops twice and answers the merged JSON, keys in completion order
(the total time is the slower request's, not the sum); a failure is a negative status (-1
connect/DNS failure, -2 timeout, -3 connection reset or no response); no Content-Type is set, so
it is ``text/html``; every request (favicon included) repeats both calls.

Fixed from the original: the upstreams were hard-coded public hosts; here they are options (any
``http://`` or ``https://`` URL, the port and path included), so it runs offline too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from urllib.parse import urlsplit

from pyswoole import BASE
from pyswoole import coroutine as co
from pyswoole.http import Request, Response, Server

DEFAULT_UPSTREAMS = ["https://www.mi360.cn/", "https://www.qq.com/"]
TIMEOUT = 3.0
CONNECT_FAILED, TIMED_OUT, RESET = -1, -2, -3


async def status_of(url: str, timeout: float = TIMEOUT) -> int:
    """``GET url`` and return the response's status code (negative on failure, as Swoole's client)."""
    try:
        return await asyncio.wait_for(_get_status(url), timeout)
    except TimeoutError:
        return TIMED_OUT


async def _get_status(url: str) -> int:
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: Chrome/49.0.2587.3\r\n"
        "Accept: text/html;application/xml\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        context = ssl.create_default_context() if secure else None
        reader, writer = await asyncio.open_connection(
            parts.hostname, parts.port or (443 if secure else 80), ssl=context
        )
    except (OSError, ssl.SSLError):
        return CONNECT_FAILED
    try:
        writer.write(request)
        line = await reader.readline()
    except (OSError, ssl.SSLError):
        return RESET
    finally:
        writer.close()
    fields = line.split()
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
        return RESET
    return int(fields[1])


def make_server(host: str, port: int, upstreams: list[str]) -> Server:
    server = Server(host, port, BASE)
    server.set({"worker_num": 1})

    @server.on("request")
    async def on_request(request: Request, response: Response) -> None:
        chan = co.Channel(len(upstreams))

        async def fetch(url: str) -> None:
            await chan.push({urlsplit(url).hostname: await status_of(url)})

        for url in upstreams:
            co.go(fetch, url)
        result: dict[str, int] = {}
        for _ in upstreams:
            result.update(await chan.pop())
        response.end(json.dumps(result))

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument(
        "--upstream", action="append", help="upstream URL (give it twice); default: the original's"
    )
    args = parser.parse_args()
    make_server(args.host, args.port, args.upstream or DEFAULT_UPSTREAMS).start()


if __name__ == "__main__":
    main()
