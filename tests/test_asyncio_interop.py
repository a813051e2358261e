"""Server callbacks start eagerly, outside any Task; asyncio libraries must still work in them
from the first line: asyncio.timeout, TaskGroup, redis-py's asyncio client."""

import socket

from helpers import APPS, free_port, port_open

pytest_plugins = ["tests.db_servers"]


def ask(port: int, command: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(command)
        sock.settimeout(10)
        return sock.recv(1000)


def test_asyncio_libraries_in_a_callback_before_its_first_suspension(run_server, redis_server):
    port = free_port()
    run_server([APPS / "asyncio_libs_server.py", port, redis_server.url], ready=lambda: port_open(port))
    assert ask(port, b"timeout") == b"timed out"
    assert ask(port, b"group") == b"ab"
    assert ask(port, b"redis greeting hello") == b"hello"
