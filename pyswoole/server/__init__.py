"""The server layer: the ``Server`` API, ports, connections, the registry and the worker runtime."""

from pyswoole.server.port import Port
from pyswoole.server.server import EVENTS, Server
from pyswoole.server.settings import SettingsError

__all__ = ["EVENTS", "Port", "Server", "SettingsError"]
