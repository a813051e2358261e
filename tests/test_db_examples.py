"""examples/mysql_connections.py run for real against the private MariaDB."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

pytest_plugins = ["tests.db_servers"]

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def test_mysql_connections_example_counts_the_connects_of_each_mode(mariadb: Any) -> None:
    command = [sys.executable, str(ROOT / "examples" / "mysql_connections.py")]
    command += ["--mysql-port", str(mariadb.port), "--mysql-db", mariadb.db]
    command += ["--queries", "120", "--concurrency", "6", "--pool-size", "3"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=ENV)
    assert result.returncode == 0, result.stderr
    assert "120 queries from 6 coroutines" in result.stdout
    rows = {}
    for line in result.stdout.splitlines():
        match = re.match(r"(short|long|pooled \(3\))\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)$", line)
        if match:
            rows[match[1]] = int(match[2])
    assert rows == {"short": 120, "long": 6, "pooled (3)": 3}


def test_mysql_connections_example_reports_an_unreachable_server() -> None:
    command = [sys.executable, str(ROOT / "examples" / "mysql_connections.py"), "--mysql-port", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=ENV)
    assert result.returncode == 1
    assert result.stderr.startswith("cannot reach MySQL at 127.0.0.1:1: (2003,"), result.stderr
