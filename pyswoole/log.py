"""The ``pyswoole`` logger, configured from a server's ``log_level``, ``log_file`` and
``log_format`` settings, and reopened on SIGRTMIN (so logrotate can move the file away)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

from pyswoole.constants import LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_NONE, LOG_NOTICE, LOG_TRACE, LOG_WARNING

LEVELS = {
    LOG_DEBUG: logging.DEBUG,
    LOG_TRACE: logging.DEBUG,
    LOG_INFO: logging.INFO,
    LOG_NOTICE: logging.INFO,
    LOG_WARNING: logging.WARNING,
    LOG_ERROR: logging.ERROR,
    LOG_NONE: logging.CRITICAL + 10,
}
FORMAT = "[%(asctime)s %(process)d] %(levelname)s %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, pid, message (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
            + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(settings: Mapping[str, Any]) -> logging.Logger:
    """Give the ``pyswoole`` logger a handler (stderr or ``log_file``) unless the application did."""
    logger = logging.getLogger("pyswoole")
    logger.setLevel(LEVELS[settings.get("log_level", LOG_INFO)])
    if not logger.handlers:
        path = settings.get("log_file")
        handler: logging.Handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
        json_lines = settings.get("log_format", "plain") == "json"
        handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(FORMAT))
        logger.addHandler(handler)
        logger.propagate = False
    return logger


def reopen(log_file: str | None, redirect_stdio: bool) -> None:
    """Reopen the log file after rotation: the logger's file handlers and, for a daemon whose
    output goes to the log file, descriptors 1 and 2."""
    logger = logging.getLogger("pyswoole")
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                stream = handler._open()
            except OSError as exc:  # e.g. a worker running as another user: keep the old file
                logger.warning("cannot reopen %s: %s", handler.baseFilename, exc)
                continue
            finally:
                handler.release()
            old, handler.stream = handler.stream, stream
            if old is not None:
                old.close()
    if redirect_stdio and log_file:
        try:
            fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError:
            return
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


def whole_lines() -> None:
    """Write stdout and stderr a whole line at a time (inherited by forked children).

    With ``PYTHONUNBUFFERED`` (or ``-u``) ``print`` writes its text and its newline separately,
    so lines printed at once by several workers sharing a terminal or a file get mixed up.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True, write_through=False)
