"""Port of ``websocket.php`` + ``websocket.html``: a WebSocket server that is also an HTTP
"push to everyone" endpoint, and the page that talks to it.

Run: ``python3 examples/websocket.py [--host 0.0.0.0] [--port 9502]``, open
``http://127.0.0.1:9502/`` (the page logs ``建立连接``, sends ``Hello`` and shows
``接收数据： Hello, welcome`` and ``接收数据： Server：Hello``), then
``curl 'http://127.0.0.1:9502/?message=hey'`` answers ``hey`` and every open page receives ``hey``.

As in the original: on ``open`` the server prints the fd, query and server parameters and pushes
``Hello, welcome\\n``; each message is printed and answered with ``Server：<message>`` (full-width
colon, no space); ``close`` is printed for every connection, plain HTTP ones included.

Fixed from the original:
* ``websocket.html`` assigned its handlers to an undefined ``websocket`` variable, so nothing but
  the connection itself worked; it also connected to a fixed ``127.0.0.1:9502``. The page served
  here attaches its handlers to the socket it made, connects to the server it came from, and
  shows the log on the page too.
* ``/favicon.ico`` got a 404 and then fell through: it pushed an empty frame to every client.
  Here it is a 404 and nothing else.
* A request without ``?message=`` pushed an empty frame to everyone and answered an empty 200.
  Here it serves the page (so the page is reachable at all) and pushes nothing.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from pyswoole.http import Request, Response
from pyswoole.websocket import Frame, Server

PAGE = Path(__file__).with_name("websocket.html").read_bytes()


def on_open(server: Server, request: Request) -> None:
    print("建立连接：", request.fd, request.get, request.server, flush=True)
    server.push(request.fd, "Hello, welcome\n")


def on_message(server: Server, frame: Frame) -> None:
    print("接收数据：", frame.data, flush=True)
    server.push(frame.fd, f"Server：{frame.data}")


def on_close(server: Server, fd: int, reactor_id: int) -> None:
    print("连接关闭：", fd, flush=True)


def on_request(server: Server, request: Request, response: Response) -> None:
    if request.server["request_uri"] == "/favicon.ico":
        response.status(404)
        response.end()
        return
    message = (request.get or {}).get("message")
    response.header("Content-Type", "text/html; charset=utf-8")
    if message is None:
        response.end(PAGE)
        return
    for fd in server.connections:
        if server.is_established(fd):
            server.push(fd, message)
    print(message, flush=True)
    response.end(message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9502)
    args = parser.parse_args()
    ws = Server(args.host, args.port)
    ws.on("open", on_open)
    ws.on("message", on_message)
    ws.on("close", on_close)
    ws.on("request", functools.partial(on_request, ws))
    ws.start()


if __name__ == "__main__":
    main()
