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

import sys

if __name__ != "__main__":
    # This file is named after its seed (http.php). A script run from this folder has the folder
    # first on sys.path, so ``import http`` (the standard library package) finds this file: hand
    # the importer the real package instead.
    import importlib
    import os

    _here = os.path.dirname(os.path.abspath(__file__))
    _saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    del sys.modules[__name__]
    try:
        sys.modules[__name__] = importlib.import_module(__name__)
    finally:
        sys.path[:] = _saved

import argparse
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported in main(): this module may be loaded while pyswoole.http imports http
    from pyswoole.http import Request, Response


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
    from pyswoole.http import Server

    server = Server(args.host, args.port)
    server.set({"worker_num": args.workers})
    server.on("request", on_request)
    server.start()


if __name__ == "__main__":
    main()
