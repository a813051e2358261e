"""The HTTP/1.1 request parser: llhttp (the parser httptools wraps, same settings) driven from C.

``RequestParser.feed(data)`` takes bytes as they arrive and returns the requests completed by
them, in order. Requests are instances of the ``factory`` class given to the parser (the HTTP
server passes its ``Request``, so a parsed request costs one object and no Python call): the
parser sets ``url``, ``headers`` (a list of ``(name, value)`` bytes pairs, trailers included),
``body``, and ``method``/``version``/``keep_alive``/``upgrade`` when they differ from the class
defaults of ``RawRequest``. Anything wrong raises ``HttpError`` with the status to answer before
closing: 400 for malformed input (llhttp also refuses ``Content-Length`` with
``Transfer-Encoding`` and duplicated ``Content-Length``, the request-smuggling vectors), 431 for
a request line and headers over ``max_header_size`` bytes, 413 for a body over ``max_body_size``
(as soon as the bytes received exceed it; see ``check_body_size`` for the declared length).

An error found in the same bytes as complete requests is raised by the next ``feed`` (or read
from ``error``), after those requests were returned. Bytes after a request that closes the
connection are ignored (``closed``). After a request that upgrades the protocol (``Upgrade`` or
``CONNECT``) the parser stops: the bytes after that request are in ``upgrade_data``.
``stopped`` says that no more parsing will happen; ``in_message`` is true between the first
byte of a request and its end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyswoole.http._parser import Parser
from pyswoole.protocol.http import BodySink, RawRequest


class RequestParser(Parser):
    """Feed bytes, get whole requests. One parser per connection.

    ``on_head(request)`` (optional) runs when the head of a request that may have a body (not
    ``GET``/``HEAD``) is complete, and may return a ``BodySink`` that receives the body instead
    of memory (the sink is closed at the end of the message, aborted by ``discard()`` or an
    error); it may also raise ``HttpError``.
    """

    __slots__ = ()

    def __init__(
        self,
        factory: Callable[[], RawRequest] = RawRequest,
        *,
        max_header_size: int = 64 * 1024,
        max_body_size: int = 2 * 1024 * 1024,
        on_head: Callable[[Any], BodySink | None] | None = None,
    ):
        super().__init__(factory, max_header_size, max_body_size, on_head)
