"""Run WSGI applications on ``pyswoole.http.Server``: each request runs in a thread pool so a
blocking application never stalls the worker's event loop.

``attach(server, app, threads=...)`` makes ``app`` the server's ``request`` handler. A response
body up to ``STREAM_THRESHOLD`` is sent in one write with its ``Content-Length``; a larger one
(a generator, a file wrapper) streams chunk by chunk at the client's pace.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

from pyswoole.asgi import HttpCycle
from pyswoole.http.request import Request
from pyswoole.http.response import ENDED, FRESH, Response
from pyswoole.http.server import Server

log = logging.getLogger("pyswoole")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: Bodies larger than this stream instead of being sent in one write.
STREAM_THRESHOLD = 256 * 1024


def wsgi_environ(request: Request, multiprocess: bool) -> dict[str, Any]:
    conn = request.conn
    assert conn is not None
    url = request.url
    cut = url.find(b"?")
    path = url if cut < 0 else url[:cut]
    sockname = conn.transport.get_extra_info("sockname")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method.decode("ascii"),
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote(path.decode("latin-1"), encoding="latin-1"),
        "QUERY_STRING": "" if cut < 0 else url[cut + 1 :].decode("latin-1"),
        "SERVER_NAME": sockname[0] if isinstance(sockname, tuple) else "localhost",
        "SERVER_PORT": str(sockname[1]) if isinstance(sockname, tuple) else "0",
        "SERVER_PROTOCOL": f"HTTP/{request.version}",
        "REMOTE_ADDR": conn.remote[0],
        "REMOTE_PORT": str(conn.remote[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if conn.tls else "http",
        "wsgi.input": io.BytesIO(request.body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
    }
    for name, value in request.headers:
        key = name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
            environ[key] = text
            continue
        key = "HTTP_" + key
        environ[key] = f"{environ[key]},{text}" if key in environ else text
    if "CONTENT_LENGTH" not in environ and request.body:
        environ["CONTENT_LENGTH"] = str(len(request.body))
    return environ


class WSGIHandler:
    """The ``request`` callback that runs a WSGI application in a thread pool."""

    eager = False  # finishes every response itself (see HttpOptions.eager)

    def __init__(self, app: WSGIApp, threads: int = 10, multiprocess: bool = False):
        self.app = app
        self.threads = threads
        self.multiprocess = multiprocess
        self.executor: ThreadPoolExecutor | None = None

    async def __call__(self, request: Request, response: Response) -> None:
        conn = request.conn
        assert conn is not None
        if self.executor is None:  # made in the worker, after the fork
            self.executor = ThreadPoolExecutor(self.threads, thread_name_prefix="wsgi")
        loop = asyncio.get_running_loop()
        cycle = HttpCycle(conn, request, response)
        try:
            environ = wsgi_environ(request, self.multiprocess)
            start, body = await loop.run_in_executor(self.executor, self._run, environ, cycle, loop)
            if start is not None:  # not streamed: the whole response now
                await cycle.send(start)
                await cycle.send({"type": "http.response.body", "body": body})
        except Exception:
            log.exception(
                "WSGI application failed for %s %s", request.get_method(), request.url.decode("latin-1")
            )
            if response.state == FRESH:
                cycle.head = None
                conn.fail(response)
            elif response.state != ENDED:
                response.state = ENDED
                conn.transport.abort()

    def _run(
        self, environ: dict[str, Any], cycle: HttpCycle, loop: asyncio.AbstractEventLoop
    ) -> tuple[Any, bytes]:
        """In a pool thread: call the app, gather its body; stream it if it is large."""
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[..., Any]:
            if exc_info is not None and started and started[0] is True:
                raise exc_info[1].with_traceback(exc_info[2])
            code = int(status.split(" ", 1)[0])
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
            started[:] = [{"type": "http.response.start", "status": code, "headers": raw}]
            return write

        def send(message: dict[str, Any]) -> None:
            asyncio.run_coroutine_threadsafe(cycle.send(message), loop).result()

        chunks: list[bytes] = []
        size = 0
        streaming = False

        def write(data: bytes) -> None:
            nonlocal size, streaming
            if not data:
                return
            if not started:
                raise AssertionError("write() before start_response()")
            if streaming:
                send({"type": "http.response.body", "body": data, "more_body": True})
                return
            chunks.append(data)
            size += len(data)
            if size > STREAM_THRESHOLD:
                streaming = True
                send(started[0])
                started[0] = True
                send({"type": "http.response.body", "body": b"".join(chunks), "more_body": True})
                chunks.clear()

        result = self.app(environ, start_response)
        try:
            for data in result:
                write(data)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not started:
            raise RuntimeError("the WSGI application did not call start_response()")
        if streaming:
            send({"type": "http.response.body", "body": b"", "more_body": False})
            return None, b""
        return started[0], b"".join(chunks)


def attach(server: Server, app: WSGIApp, threads: int = 10) -> WSGIHandler:
    """Serve ``app`` on ``server`` through a pool of ``threads`` threads per worker."""
    handler = WSGIHandler(app, threads, multiprocess=server.setting["worker_num"] > 1)
    server.on("request", handler)
    return handler


__all__ = ["WSGIHandler", "attach", "wsgi_environ"]
