"""Swoole's setting names, their types and defaults, and the validation behind ``Server.set()``."""

from __future__ import annotations

import difflib
import gc
import os
import resource
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pyswoole.constants import SSL_TLSv1, SSL_TLSv1_1, SSL_TLSv1_2, SSL_TLSv1_3
from pyswoole.protocol.framing import DEFAULT_MAX_LENGTH, LENGTH_TYPES


@dataclass(frozen=True)
class Setting:
    """One known setting: accepted Python types, default, optional extra check, and its scope."""

    types: tuple[type, ...]
    default: Any = None
    check: Callable[[Any], str | None] | None = None
    port: bool = False  # may be set per listening port (framing and protocol options)


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _not_negative(value: Any) -> str | None:
    return None if value >= 0 else "must not be negative"


def _length_type(value: Any) -> str | None:
    return None if value in LENGTH_TYPES else f"must be one of the pack codes {' '.join(LENGTH_TYPES)}"


def _log_level(value: Any) -> str | None:
    return None if 0 <= value <= 6 else "must be one of LOG_DEBUG .. LOG_NONE (0..6)"


def _tls_protocols(value: Any) -> str | None:
    versions = (SSL_TLSv1, SSL_TLSv1_1, SSL_TLSv1_2, SSL_TLSv1_3)
    if value & ~sum(versions) or not value:
        return "must combine SSL_TLSv1, SSL_TLSv1_1, SSL_TLSv1_2 and SSL_TLSv1_3"
    chosen = "".join("1" if value & bit else "0" for bit in versions).strip("0")
    return (
        None
        if "0" not in chosen
        else "must name an unbroken range of TLS versions (e.g. SSL_TLSv1_2 | SSL_TLSv1_3)"
    )


def default_max_conn() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(1024, min(soft if soft != resource.RLIM_INFINITY else 100_000, 100_000))


INT = (int,)
NUMBER = (int, float)
BOOL = (bool,)
STR = (str,)

SETTINGS: dict[str, Setting] = {
    # processes
    "worker_num": Setting(INT, None, _positive),
    "reactor_num": Setting(INT, None, _positive),
    "max_request": Setting(INT, 0, _not_negative),
    "max_request_grace": Setting(INT, None, _not_negative),
    "max_memory": Setting(INT, 0, _not_negative),
    "max_wait_time": Setting(NUMBER, 3.0, _not_negative),
    "enable_coroutine": Setting(BOOL, True),
    "dispatch_mode": Setting(INT, 2, lambda v: None if 1 <= v <= 5 else "must be 1 to 5"),
    "dispatch_func": Setting((Callable,), None),  # type: ignore[arg-type]
    "task_worker_num": Setting(INT, 0, _not_negative),
    "task_enable_coroutine": Setting(BOOL, False),
    "task_max_request": Setting(INT, 0, _not_negative),
    "task_queue_size": Setting(INT, 100_000, _positive),
    "gc_threshold": Setting(INT, 10_000, _not_negative),
    "gc_freeze": Setting(BOOL, True),
    # connections
    "max_conn": Setting(INT, None, _positive),
    "backlog": Setting(INT, 511, _positive),
    "heartbeat_check_interval": Setting(NUMBER, 0, _not_negative),
    "heartbeat_idle_time": Setting(NUMBER, 0, _not_negative),
    "buffer_output_size": Setting(INT, 2 * 1024 * 1024, _positive),
    "socket_buffer_size": Setting(INT, 8 * 1024 * 1024, _positive),
    "open_tcp_nodelay": Setting(BOOL, True, port=True),
    # operation
    "daemonize": Setting(BOOL, False),
    "pid_file": Setting(STR, None),
    "user": Setting(STR, None),
    "group": Setting(STR, None),
    "log_level": Setting(INT, 2, _log_level),
    "log_file": Setting(STR, None),
    "log_format": Setting(
        STR, "plain", lambda v: None if v in ("plain", "json") else "must be 'plain' or 'json'"
    ),
    # framing (per port)
    "open_eof_check": Setting(BOOL, False, port=True),
    "open_eof_split": Setting(BOOL, False, port=True),
    "package_eof": Setting((str, bytes), b"\r\n", lambda v: None if v else "must not be empty", port=True),
    "open_length_check": Setting(BOOL, False, port=True),
    "package_length_type": Setting(STR, "N", _length_type, port=True),
    "package_length_offset": Setting(INT, 0, _not_negative, port=True),
    "package_body_offset": Setting(INT, 4, _not_negative, port=True),
    "package_length_func": Setting((Callable,), None, port=True),  # type: ignore[arg-type]
    "package_max_length": Setting(INT, DEFAULT_MAX_LENGTH, _positive, port=True),
    # TLS (per port; used by ports with the SSL flag, see server/tls.py)
    "ssl_cert_file": Setting(STR, None, port=True),
    "ssl_key_file": Setting(STR, None, port=True),
    "ssl_ciphers": Setting(STR, None, port=True),
    "ssl_protocols": Setting(INT, None, _tls_protocols, port=True),
    "ssl_verify_peer": Setting(BOOL, False, port=True),
    "ssl_client_cert_file": Setting(STR, None, port=True),
}


class SettingsError(ValueError):
    """A setting is unknown, has the wrong type, or an invalid value."""


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "int", float: "float", bool: "bool", str: "str", bytes: "bytes"}
    return " or ".join(names.get(t, "callable") for t in types)


def validate(
    values: Mapping[str, Any], known: Mapping[str, Setting] = SETTINGS, *, port: bool = False
) -> dict[str, Any]:
    """Check every key and value; return a plain dict (``package_eof`` normalised to bytes)."""
    checked: dict[str, Any] = {}
    for key, value in values.items():
        setting = known.get(key)
        if setting is None:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SettingsError(f"unknown setting {key!r}{hint}")
        if port and not setting.port:
            raise SettingsError(f"setting {key!r} applies to the whole server, not to one port")
        if setting.types == (Callable,):  # type: ignore[comparison-overlap]
            ok = value is None or callable(value)
        elif bool not in setting.types and isinstance(value, bool):
            ok = False
        else:
            ok = isinstance(value, setting.types)
        if not ok:
            raise SettingsError(
                f"setting {key!r} must be {_type_name(setting.types)}, not {type(value).__name__}"
            )
        if setting.check is not None and value is not None:
            problem = setting.check(value)
            if problem:
                raise SettingsError(f"setting {key!r} {problem} (got {value!r})")
        checked[key] = value.encode() if key == "package_eof" and isinstance(value, str) else value
    return checked


def defaults(known: Mapping[str, Setting] = SETTINGS) -> dict[str, Any]:
    values = {name: s.default for name, s in known.items()}
    values["worker_num"] = os.cpu_count() or 1
    values["reactor_num"] = values["worker_num"]
    values["max_conn"] = default_max_conn()
    return values


def tune_gc(settings: dict[str, Any]) -> None:
    """Settle the cycle collector for a long-running worker, once it has started.

    ``gc_freeze`` moves every object alive now (code, modules, the application's state) to the
    permanent generation, so that full collections no longer walk them; ``gc_threshold`` is the
    allocation count between young collections (Python's default of 700 makes a busy worker walk
    the objects of its requests in flight every few dozen requests; 0 turns automatic collection off).
    """
    if settings["gc_freeze"]:
        gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(settings["gc_threshold"], middle, old)
