"""Raw ASGI and RSGI applications answering ``Hello, World!`` (13 bytes, text/plain): the same
application for uvicorn, granian and ``pyswoole serve`` in bench/bench_http.py."""

from __future__ import annotations

from typing import Any

BODY = b"Hello, World!"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
START = {"type": "http.response.start", "status": 200, "headers": HEADERS}
BODY_MESSAGE = {"type": "http.response.body", "body": BODY}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(START)
    await send(BODY_MESSAGE)


async def rsgi_app(scope: Any, protocol: Any) -> None:
    """granian's RSGI interface."""
    protocol.response_bytes(200, [("content-type", "text/plain")], BODY)
