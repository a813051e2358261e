"""The chat room and the live statistics page together, from one command, on one port.

Run: ``python3 examples/demo.py [--host 0.0.0.0] [--port 9502] [--workers 2]``, then open
``http://127.0.0.1:9502/`` (the chat room of ``swoole_ws.py``) in two tabs and
``http://127.0.0.1:9502/stats`` (the statistics page of ``workerman_ws.py``).

One WebSocket server serves both pages over HTTP, and each page opens its WebSocket on the path
it was loaded from (``/`` or ``/stats``), so the server tells the two apart by the path of the
upgrade request. Which app a connection belongs to is kept in a shared-memory ``Table`` created
before the workers start: any worker sees every connection's room, so a chat message goes to the
chat connections of both workers and never to a statistics page. Statistics connections get the
``{"load":[..],"memory":[..],"disk":[..]}`` sample every second (their timer is cleared on close);
what they send is ignored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from swoole_ws import PAGE as CHAT_PAGE
from swoole_ws import broadcast, serve_page
from workerman_ws import PAGE as STATS_PAGE
from workerman_ws import StatsFeed

from pyswoole.http import Request, Response
from pyswoole.shm import Table
from pyswoole.websocket import Frame, Server

CHAT, STATS = 1, 2
STATS_PATH = "/stats"


def build(host: str, port: int, workers: int) -> Server:
    rooms = Table(16384)
    rooms.column("room", Table.TYPE_INT)
    rooms.create()
    feed = StatsFeed()
    ws = Server(host, port)
    ws.set({"worker_num": workers})

    @ws.on("start")
    def on_start(server: Server) -> None:
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{server.port}"
        print(f"chat room: {base}/   statistics: {base}{STATS_PATH}", flush=True)

    @ws.on("open")
    def on_open(server: Server, request: Request) -> None:
        if request.server["request_uri"] == STATS_PATH:
            rooms.set(str(request.fd), {"room": STATS})
            feed.start(server, request.fd)
        else:
            rooms.set(str(request.fd), {"room": CHAT})

    @ws.on("message")
    def on_message(server: Server, frame: Frame) -> None:
        row = rooms.get(str(frame.fd))
        if row is not None and row["room"] == CHAT:
            broadcast(server, frame, [int(fd) for fd, member in rooms if member["room"] == CHAT])

    @ws.on("close")
    def on_close(server: Server, fd: int, reactor_id: int) -> None:
        feed.stop(fd)
        rooms.delete(str(fd))

    @ws.on("request")
    def on_request(request: Request, response: Response) -> None:
        path = request.server["request_uri"]
        if path == "/":
            serve_page(CHAT_PAGE, response)
        elif path == STATS_PATH:
            serve_page(STATS_PAGE, response)
        else:
            response.status(404)
            response.end()

    return ws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9502)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    build(args.host, args.port, args.workers).start()


if __name__ == "__main__":
    main()
