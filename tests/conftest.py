"""Shared fixtures: a scratch directory per test and server processes that never outlive a test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import ServerProcess


@pytest.fixture
def run_server(tmp_path: Path) -> Iterator:
    """``run_server(argv, ready=...)`` starts a server process; every one is stopped after the test."""
    started: list[ServerProcess] = []

    def start(argv, ready=None, env=None, timeout: float = 15.0) -> ServerProcess:
        server = ServerProcess([str(a) for a in argv], tmp_path, env=env)
        started.append(server)
        return server.start(ready, timeout)

    yield start
    for server in started:
        server.stop()
