"""pyswoole: Swoole's model of long-running, event-driven network services, for Python."""

from pyswoole import coroutine
from pyswoole.client import Client, client_select
from pyswoole.constants import (
    BASE,
    DISPATCH_FDMOD,
    DISPATCH_IDLE_WORKER,
    DISPATCH_IPMOD,
    DISPATCH_ROUND_ROBIN,
    DISPATCH_UIDMOD,
    KEEP,
    LOG_DEBUG,
    LOG_ERROR,
    LOG_INFO,
    LOG_NONE,
    LOG_NOTICE,
    LOG_TRACE,
    LOG_WARNING,
    PROCESS,
    SOCK_TCP,
    SOCK_TCP6,
    SOCK_UDP,
    SOCK_UDP6,
    SOCK_UNIX_DGRAM,
    SOCK_UNIX_STREAM,
    SSL,
    SSL_TLSv1,
    SSL_TLSv1_1,
    SSL_TLSv1_2,
    SSL_TLSv1_3,
)
from pyswoole.coroutine import Channel, WaitGroup, defer, go
from pyswoole.coroutine import current_task as _current_task  # noqa: F401 - asyncio.current_task in eager steps
from pyswoole.pool import ConnectionPool, PoolTimeoutError
from pyswoole.process import Process
from pyswoole.server import Port, Server, SettingsError
from pyswoole.server.tasks import TaskError
from pyswoole.shm import Atomic, AtomicLong, Lock, Table, TableFullError
from pyswoole.timer import Timer

__version__ = "0.1.0"

__all__ = [
    "BASE",
    "DISPATCH_FDMOD",
    "DISPATCH_IDLE_WORKER",
    "DISPATCH_IPMOD",
    "DISPATCH_ROUND_ROBIN",
    "DISPATCH_UIDMOD",
    "KEEP",
    "LOG_DEBUG",
    "LOG_ERROR",
    "LOG_INFO",
    "LOG_NONE",
    "LOG_NOTICE",
    "LOG_TRACE",
    "LOG_WARNING",
    "PROCESS",
    "SOCK_TCP",
    "SOCK_TCP6",
    "SOCK_UDP",
    "SOCK_UDP6",
    "SOCK_UNIX_DGRAM",
    "SOCK_UNIX_STREAM",
    "SSL",
    "Atomic",
    "AtomicLong",
    "Channel",
    "Client",
    "ConnectionPool",
    "Lock",
    "PoolTimeoutError",
    "Port",
    "Process",
    "SSL_TLSv1",
    "SSL_TLSv1_1",
    "SSL_TLSv1_2",
    "SSL_TLSv1_3",
    "Server",
    "SettingsError",
    "Table",
    "TableFullError",
    "TaskError",
    "Timer",
    "WaitGroup",
    "client_select",
    "coroutine",
    "defer",
    "go",
]
