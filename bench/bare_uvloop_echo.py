"""The pure-Python ceiling for length-framed TCP echo: one asyncio Protocol on uvloop.

Frames are a 4-byte big-endian length followed by that many bytes; every whole frame is echoed
as received (prefix included). Partial frames wait in a buffer for the rest. This is what the
engine's echo benchmark is compared against: the least work a Python server can do per packet.
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop

MAX_FRAME = 2 * 1024 * 1024


class LengthEcho(asyncio.Protocol):
    __slots__ = ("buffer", "transport")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
        size = len(data)
        start = 0
        write = self.transport.write
        while size - start >= 4:
            end = start + 4 + int.from_bytes(data[start : start + 4], "big")
            if end - start > MAX_FRAME:
                self.transport.close()
                return
            if end > size:
                break
            write(data[start:end])
            start = end
        self.buffer = data[start:] if start < size else b""


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(LengthEcho, host, port, backlog=4096, reuse_address=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9601)
    args = parser.parse_args()
    try:
        uvloop.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
