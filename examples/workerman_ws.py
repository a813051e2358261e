"""Port of ``workerman_ws.php`` + ``workerman_tj.html``: live system statistics. Each connection
gets, every second, ``{"load":[...],"memory":[...],"disk":[...]}``: the output lines of
``uptime``, ``free -h`` and ``df -h``.

Run: ``python3 examples/workerman_ws.py [--host 0.0.0.0] [--port 9502]`` and open
``http://127.0.0.1:9502/``.

As in the original: one worker; a per-connection 1 s timer, first tick 1 s after the connection
opens; lines with their trailing whitespace stripped; JSON as PHP's ``json_encode`` writes it
(``/`` escaped as ``\\/``, non-ASCII as ``\\uXXXX``); messages from clients are ignored.

Fixed from the original:
* The timer was never removed: after a client left, its timer went on running the commands and
  sending into a closed connection, and timers piled up. The timer is cleared on ``close``.
* ``exec()`` blocked the worker three times a second per client. The commands run as
  subprocesses without blocking the event loop, concurrently, and one sample per second is
  shared by every connection of the worker.
* The page loaded jQuery from a CDN and connected to the author's host; it is served by this
  server at ``/`` (and ``/workerman_tj.html``), needs no script from elsewhere, connects to the
  server it came from, and inserts the lines as text.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from pyswoole.http import Request, Response
from pyswoole.timer import Timer
from pyswoole.websocket import Frame, Server

PAGE = Path(__file__).with_name("workerman_tj.html").read_bytes()
PAGE_PATHS = ("/", "/workerman_tj.html")
COMMANDS = {"load": ("uptime",), "memory": ("free", "-h"), "disk": ("df", "-h")}


async def command_lines(argv: tuple[str, ...]) -> list[str]:
    """The output lines of ``argv`` like PHP's ``exec()``: trailing whitespace stripped."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
    except OSError as exc:
        return [f"{argv[0]}: {exc.strerror}"]
    out, _ = await proc.communicate()
    return [line.rstrip() for line in out.decode(errors="replace").rstrip().splitlines()]


async def system_stats() -> str:
    """One sample, as the JSON text the page expects."""
    results = await asyncio.gather(*(command_lines(argv) for argv in COMMANDS.values()))
    stats = dict(zip(COMMANDS, results, strict=True))
    return json.dumps(stats, separators=(",", ":")).replace("/", "\\/")


class StatsFeed:
    """Per-connection 1 s timers, cleared on close; one sample per second for all of them."""

    def __init__(self) -> None:
        self.timers: dict[int, int] = {}
        self._sample: tuple[int, asyncio.Task[str]] | None = None

    def start(self, server: Server, fd: int) -> None:
        self.timers[fd] = Timer.tick(1000, self._push, server, fd)

    def stop(self, fd: int) -> None:
        timer_id = self.timers.pop(fd, None)
        if timer_id is not None:
            Timer.clear(timer_id)

    async def _push(self, timer_id: int, server: Server, fd: int) -> None:
        server.push(fd, await self.sample())

    def sample(self) -> asyncio.Task[str]:
        second = int(time.monotonic())
        if self._sample is None or self._sample[0] != second:
            self._sample = (second, asyncio.get_running_loop().create_task(system_stats()))
        return self._sample[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9502)
    args = parser.parse_args()
    feed = StatsFeed()
    ws = Server(args.host, args.port)
    ws.set({"worker_num": 1})

    @ws.on("open")
    def on_open(server: Server, request: Request) -> None:
        feed.start(server, request.fd)

    @ws.on("message")
    def on_message(server: Server, frame: Frame) -> None:
        pass  # the original never reads what clients send

    @ws.on("close")
    def on_close(server: Server, fd: int, reactor_id: int) -> None:
        feed.stop(fd)

    @ws.on("request")
    def on_request(request: Request, response: Response) -> None:
        if request.server["request_uri"] in PAGE_PATHS:
            response.header("Content-Type", "text/html; charset=utf-8")
            response.end(PAGE)
        else:
            response.status(404)
            response.end()

    ws.start()


if __name__ == "__main__":
    main()
