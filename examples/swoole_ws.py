"""Port of ``swoole_ws.php`` + ``swoole_chat.html``: a chat room. Every message goes to every
connection, the sender included, as ``Client-<sender fd>: <message>`` (plain text).

Run: ``python3 examples/swoole_ws.py [--host 0.0.0.0] [--port 9502]`` and open
``http://127.0.0.1:9502/`` in two browser tabs.

As in the original: 2 workers, so a message from a connection of one worker reaches those of the
other (``server.connections`` lists every connection of every worker; the broadcast encodes the
frame once and routes it to the owning workers); no open/close handlers; any other plain HTTP
request gets the WebSocket server's 400 page.

Fixed from the original:
* The page loaded jQuery from a CDN and connected to the author's host. It is served by this
  server at ``/`` (and ``/swoole_chat.html``), needs no script from elsewhere, and connects to the
  server it came from.
* The page inserted messages as HTML (``<b>x</b>`` rendered bold: anyone could inject markup and
  script into everyone's page). Messages are inserted as text now.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from pyswoole.http import Request, Response
from pyswoole.websocket import Frame, Server
from pyswoole.websocket.server import bad_request_page

PAGE = Path(__file__).with_name("swoole_chat.html").read_bytes()
PAGE_PATHS = ("/", "/swoole_chat.html")


def chat_line(frame: Frame) -> str:
    data = frame.data
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    return f"Client-{frame.fd}: {text}"


def broadcast(server: Server, frame: Frame, fds: Iterable[int] | None = None) -> None:
    """Send the chat line of ``frame`` to ``fds`` (every connection by default)."""
    server.broadcast(fds, chat_line(frame))


def serve_page(page: bytes, response: Response) -> None:
    response.header("Content-Type", "text/html; charset=utf-8")
    response.end(page)


def on_request(request: Request, response: Response) -> None:
    if request.server["request_uri"] in PAGE_PATHS:
        serve_page(PAGE, response)
    else:
        bad_request_page(request, response)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9502)
    args = parser.parse_args()
    ws = Server(args.host, args.port)
    ws.set({"worker_num": 2})
    ws.on("message", broadcast)
    ws.on("request", on_request)
    ws.start()


if __name__ == "__main__":
    main()
