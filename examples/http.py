"""Port of ``http.php``: an HTTP server with a controller/action route table.

Run: ``python3 examples/http.py [--host 0.0.0.0] [--port 9501] [--workers 2]``, then
``curl http://127.0.0.1:9501/test/index?a=1`` -> ``<h1>test/index #NNNN</h1>`` (NNNN random in
1000..9999) and ``curl http://127.0.0.1:9501/test/say`` -> ``<h1>test/say #NNNN</h1>``.

As in the original: ``/favicon.ico`` gets an empty 404; routing uses the path without the query
string, case-insensitively, and ignores extra segments (``/TEST/INDEX/x`` works); the server prints
the controller and action of each request, and ``index`` prints the query and form parameters.

Fixed from the original: it instantiated whatever class the URL named (``/ArrayObject/count``
called into PHP built-ins) and crashed the worker on ``/``, ``/test`` or an unknown name. Here an
explicit table allows only ``test`` -> ``index``/``say``; anything else is a 404, and a handler
that raises gets a 500 while the worker keeps serving.
"""

from __future__ import annotations

import os
import sys

# This file is named after its seed (http.php); run as a script, its folder comes first on
# sys.path and "http.py" would shadow the standard library's http package. Drop that entry.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import argparse
import random
from collections.abc import Callable

from pyswoole.http import Request, Response, Server


class Test:
    """The original's only controller."""

    def index(self, request: Request, response: Response) -> None:
        print(request.get, request.post, flush=True)
        response.header("Content-Type", "text/html; charset=utf-8")
        response.end(f"<h1>test/index #{random.randint(1000, 9999)}</h1>")

    def say(self, request: Request, response: Response) -> None:
        response.header("Content-Type", "text/html; charset=utf-8")
        response.end(f"<h1>test/say #{random.randint(1000, 9999)}</h1>")


ROUTES: dict[tuple[str, str], Callable[[Request, Response], None]] = {
    ("test", "index"): Test().index,
    ("test", "say"): Test().say,
}


def on_request(request: Request, response: Response) -> None:
    uri = request.server["request_uri"]
    if uri == "/favicon.ico" or request.server["path_info"] == "/favicon.ico":
        response.status(404)
        response.end()
        return
    controller, _, rest = uri.strip("/").partition("/")
    action = rest.split("/", 1)[0]
    print(controller, action, flush=True)
    handler = ROUTES.get((controller.lower(), action.lower()))
    if handler is None:
        response.status(404)
        response.end(f"<h1>no route for /{controller}/{action}</h1>")
        return
    handler(request, response)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    server = Server(args.host, args.port)
    server.set({"worker_num": args.workers})
    server.on("request", on_request)
    server.start()


if __name__ == "__main__":
    main()
