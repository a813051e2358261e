"""The pure-Python ceiling for HTTP/1.1: asyncio + uvloop + httptools, one Protocol, no framework.

Every request is answered with 200 and the 13-byte text/plain body ``Hello, World!`` (with
``Date`` and ``Server`` headers, as real servers send). Keep-alive and pipelining work: responses
are written in request order as each request completes; a request without keep-alive gets
``Connection: close`` and the connection is closed; a malformed request gets 400 and a close.
"""

from __future__ import annotations

import argparse
import asyncio
from email.utils import formatdate

import httptools
import uvloop

BODY = b"Hello, World!"
HEAD = b"HTTP/1.1 200 OK\r\nServer: bare-uvloop\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
response = b""


def refresh_response(loop: asyncio.AbstractEventLoop) -> None:
    """Rebuild the cached response once a second, for its Date header."""
    global response
    response = HEAD + b"Date: " + formatdate(usegmt=True).encode() + b"\r\n\r\n" + BODY
    loop.call_later(1.0, refresh_response, loop)


class HelloHttp(asyncio.Protocol):
    __slots__ = ("parser", "transport")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(BAD_REQUEST)
            self.transport.close()

    def on_message_complete(self) -> None:
        if self.transport.is_closing():
            return
        if self.parser.should_keep_alive():
            self.transport.write(response)
        else:
            self.transport.write(response.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
            self.transport.close()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    refresh_response(loop)
    server = await loop.create_server(HelloHttp, host, port, backlog=4096, reuse_address=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9602)
    args = parser.parse_args()
    try:
        uvloop.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
