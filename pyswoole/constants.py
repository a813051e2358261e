"""Constants with Swoole's names and values."""

from __future__ import annotations

# Server modes.
BASE = 1
PROCESS = 2

# Socket types (Swoole's SWOOLE_SOCK_*), and flags that may be OR-ed in.
SOCK_TCP = 1
SOCK_UDP = 2
SOCK_TCP6 = 3
SOCK_UDP6 = 4
SOCK_UNIX_STREAM = 5
SOCK_UNIX_DGRAM = 6
SOCK_TYPE_MASK = 0xFF
SSL = 512
KEEP = 4096

STREAM_TYPES = frozenset({SOCK_TCP, SOCK_TCP6, SOCK_UNIX_STREAM})
DGRAM_TYPES = frozenset({SOCK_UDP, SOCK_UDP6, SOCK_UNIX_DGRAM})
UNIX_TYPES = frozenset({SOCK_UNIX_STREAM, SOCK_UNIX_DGRAM})

# Log levels (SWOOLE_LOG_*).
LOG_DEBUG = 0
LOG_TRACE = 1
LOG_INFO = 2
LOG_NOTICE = 3
LOG_WARNING = 4
LOG_ERROR = 5
LOG_NONE = 6

# Dispatch modes.
DISPATCH_ROUND_ROBIN = 1
DISPATCH_FDMOD = 2
DISPATCH_IDLE_WORKER = 3
DISPATCH_IPMOD = 4
DISPATCH_UIDMOD = 5

# Worker states reported by get_worker_status().
WORKER_BUSY = 1
WORKER_IDLE = 2
WORKER_EXIT = 3

# TLS versions for the ssl_protocols setting (SWOOLE_SSL_TLSv1 ...).
SSL_TLSv1 = 1 << 3
SSL_TLSv1_1 = 1 << 4
SSL_TLSv1_2 = 1 << 5
SSL_TLSv1_3 = 1 << 6
