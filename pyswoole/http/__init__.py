"""HTTP/1.1 server: ``from pyswoole.http import Server, Request, Response`` (see docs/http.md)."""

from pyswoole.http.request import Request
from pyswoole.http.response import Response
from pyswoole.http.server import Server

__all__ = ["Request", "Response", "Server"]
