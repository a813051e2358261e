"""Port of ``tcpC_async.php`` (README: ``tcp_async.php``): an event-callback client.

Run: ``python3 examples/tcpC_async.py [--host 127.0.0.1] [--port 9501]`` against
``examples/tcpS.py``. The original registers four callbacks (``connect``, ``receive``, ``error``,
``close``) on a ``SWOOLE_SOCK_ASYNC`` client, which Swoole 4.3+ no longer has (it aborts with
"please install the ext-async extension"); this port implements the intended behaviour on the
coroutine client (``co.Client``): the callbacks run from one coroutine, and the rest of the
program goes on meanwhile. Output: ``Received: Server: Hello`` then ``Connection close``.

Fixes: the original sends ``'Hello\\n'`` in single quotes, i.e. a literal backslash and ``n``; this
port sends a real newline. The original keeps the connection open forever; this port closes it
after the first reply (``--keep-open`` waits for the server to close instead). A failed connect
prints ``Connect failed`` (the ``error`` callback).
"""

import argparse
import sys
from collections.abc import Callable
from typing import Any

from pyswoole import SOCK_TCP
from pyswoole import coroutine as co


class CallbackClient:
    """The Swoole 1.x/4.2 async client API on top of ``co.Client``: ``on(event, fn)`` + ``connect``."""

    def __init__(self, sock_type: int = SOCK_TCP) -> None:
        self.client = co.Client(sock_type)
        self.callbacks: dict[str, Callable[..., Any]] = {}

    def on(self, event: str, callback: Callable[..., Any]) -> None:
        self.callbacks[event] = callback

    def connect(self, host: str, port: int, timeout: float = 0.5) -> None:
        missing = {"connect", "receive", "error", "close"} - set(self.callbacks)
        if missing:
            raise ValueError(f"callbacks {sorted(missing)} are required")
        co.go(self._run, host, port, timeout)

    async def send(self, data: bytes) -> None:
        await self.client.send(data)

    def close(self) -> None:
        self.client.close()

    async def _run(self, host: str, port: int, timeout: float) -> None:
        if not await self.client.connect(host, port, timeout):
            self.callbacks["error"](self)
            return
        await _call(self.callbacks["connect"], self)
        while self.client.is_connected():
            data = await self.client.recv()
            if not data:
                break
            await _call(self.callbacks["receive"], self, data)
        self.client.close()
        self.callbacks["close"](self)


async def _call(callback: Callable[..., Any], *args: Any) -> None:
    result = callback(*args)
    if result is not None:
        await result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument(
        "--keep-open", action="store_true", help="wait for the server to close the connection"
    )
    args = parser.parse_args()

    client = CallbackClient(SOCK_TCP)

    async def on_connect(cli: CallbackClient) -> None:
        await cli.send(b"Hello\n")

    def on_receive(cli: CallbackClient, data: bytes) -> None:
        print("Received: " + data.decode(errors="replace").rstrip("\n"), flush=True)
        if not args.keep_open:
            cli.close()

    client.on("connect", on_connect)
    client.on("receive", on_receive)
    client.on("error", lambda cli: print("Connect failed", flush=True))
    client.on("close", lambda cli: print("Connection close", flush=True))
    co.run(client.connect, args.host, args.port, 0.5)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
