"""Go-style coroutines on asyncio: ``from pyswoole import coroutine as co``.

See docs/coroutine.md. Every coroutine is an asyncio coroutine (async functions) or a greenlet
bridged to the loop (plain functions), so asyncio libraries and blocking libraries (with
``pyswoole.runtime`` hooks) both work inside.
"""

from pyswoole.coroutine.api import (
    cancel,
    defer,
    exists,
    get_backtrace,
    get_cid,
    get_context,
    get_options,
    get_pcid,
    join,
    list,
    run,
    set,
    sleep,
    stats,
)
from pyswoole.coroutine.bridge import await_, in_plain_coroutine
from pyswoole.coroutine.channel import CHANNEL_CLOSED, CHANNEL_OK, CHANNEL_TIMEOUT, Channel
from pyswoole.coroutine.runner import CoroutineLimitError, go, spawn, start
from pyswoole.coroutine.sync import Barrier, WaitGroup, batch, map, parallel
from pyswoole.coroutine.system import (
    FILE_APPEND,
    dns_lookup,
    exec,
    gethostbyname,
    read_file,
    wait_pid,
    wait_signal,
    write_file,
)

create = go

__all__ = [
    "CHANNEL_CLOSED",
    "CHANNEL_OK",
    "CHANNEL_TIMEOUT",
    "FILE_APPEND",
    "Barrier",
    "Channel",
    "Client",
    "CoroutineLimitError",
    "WaitGroup",
    "await_",
    "batch",
    "cancel",
    "create",
    "defer",
    "dns_lookup",
    "exec",
    "exists",
    "get_backtrace",
    "get_cid",
    "get_context",
    "get_options",
    "get_pcid",
    "gethostbyname",
    "go",
    "in_plain_coroutine",
    "join",
    "list",
    "map",
    "parallel",
    "read_file",
    "run",
    "set",
    "sleep",
    "spawn",
    "start",
    "stats",
    "wait_pid",
    "wait_signal",
    "write_file",
]


def __getattr__(name: str):
    if name == "Client":  # the coroutine client lives with the clients
        from pyswoole.client.coroutine import Client

        return Client
    raise AttributeError(f"module 'pyswoole.coroutine' has no attribute {name!r}")
