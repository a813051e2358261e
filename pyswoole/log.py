"""The ``pyswoole`` logger, configured from a server's ``log_level`` and ``log_file`` settings."""

from __future__ import annotations

import logging
import sys
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


def configure(settings: Mapping[str, Any]) -> logging.Logger:
    """Give the ``pyswoole`` logger a handler (stderr or ``log_file``) unless the application did."""
    logger = logging.getLogger("pyswoole")
    logger.setLevel(LEVELS[settings.get("log_level", LOG_INFO)])
    if not logger.handlers:
        path = settings.get("log_file")
        handler: logging.Handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
        logger.propagate = False
    return logger
