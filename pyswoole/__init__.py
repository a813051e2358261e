"""pyswoole: Swoole's model of long-running, event-driven network services, for Python."""

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
)
from pyswoole.server import Port, Server, SettingsError
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
    "Port",
    "Server",
    "SettingsError",
    "Timer",
]
