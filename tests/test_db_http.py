"""examples/coroutine_client.py for real: pyswoole's HTTP server, 2 workers, a private MariaDB."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from helpers import EXAMPLES, ROOT, free_port, port_open

pytest_plugins = ["tests.db_servers"]


@pytest.fixture
def demo_view(mariadb: Any) -> str:
    """The example queries the view ``demo``; each test points it at what it needs."""
    mariadb.query("DROP TABLE IF EXISTS items")
    mariadb.query(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(5,2), note TEXT NULL)"
    )
    mariadb.query("INSERT INTO items VALUES (1, 'x', 1.50, NULL), (2, 'y', 2, 'n')")
    mariadb.query("CREATE OR REPLACE VIEW demo AS SELECT * FROM items ORDER BY id")
    return "demo"


def start_demo(run_server: Any, mariadb: Any, table: str, *extra: str) -> str:
    port = free_port()
    argv = [EXAMPLES / "coroutine_client.py", "--host", "127.0.0.1", "--port", port, "--workers", 2]
    argv += ["--mysql-port", mariadb.port, "--mysql-password", "", "--mysql-table", table, *extra]
    run_server(argv, ready=lambda: port_open(port), env={"PYTHONPATH": str(ROOT)})
    return f"http://127.0.0.1:{port}"


def test_rows_as_strings_concurrency_and_a_database_outage(
    mariadb: Any, demo_view: str, run_server: Any
) -> None:
    url = start_demo(run_server, mariadb, demo_view)
    with httpx.Client(timeout=5) as client:
        for path in ("/", "/favicon.ico"):  # every request runs the query, as in the original
            reply = client.get(url + path)
            assert reply.status_code == 200
            assert reply.headers["content-type"] == "application/json"
            assert reply.text == (
                '[{"id":"1","name":"x","price":"1.50","note":null},{"id":"2","name":"y","price":"2.00","note":"n"}]'
            )

        mariadb.query("DELETE FROM items")
        assert client.get(url).text == "[]"

        mariadb.query("CREATE OR REPLACE VIEW demo AS SELECT SLEEP(0.5) AS slept")
        with (
            httpx.Client(timeout=5, limits=httpx.Limits(max_connections=20)) as shared,
            ThreadPoolExecutor(20) as executor,
        ):
            started = time.monotonic()
            replies = list(executor.map(lambda _: shared.get(url), range(20)))
            elapsed = time.monotonic() - started
        assert [reply.json() for reply in replies] == [[{"slept": "0"}]] * 20
        assert elapsed < 1.5, f"20 requests of SLEEP(0.5) on 2 workers took {elapsed:.2f} s"

        mariadb.query("CREATE OR REPLACE VIEW demo AS SELECT 'up' AS state")
        mariadb.stop()
        try:
            reply = client.get(url)
            assert reply.status_code == 503
            assert "Can't connect to MySQL server" in reply.json()["error"]
        finally:
            mariadb.start()
        assert client.get(url).json() == [{"state": "up"}]  # the pooled connections reconnect


def test_short_connections_connect_for_every_request(mariadb: Any, demo_view: str, run_server: Any) -> None:
    url = start_demo(run_server, mariadb, demo_view, "--short-connections")
    connections = "SHOW GLOBAL STATUS LIKE 'Connections'"
    with httpx.Client(timeout=5) as client:
        assert json.loads(client.get(url).text)[0]["name"] == "x"
        before = int(mariadb.query(connections)[0][1])
        for _ in range(5):
            assert client.get(url).status_code == 200
        assert int(mariadb.query(connections)[0][1]) - before == 5 + 1  # one per request, one ours


def test_mysql_socket_instead_of_tcp(mariadb: Any, demo_view: str, run_server: Any) -> None:
    url = start_demo(run_server, mariadb, demo_view, "--mysql-socket", mariadb.socket, "--mysql-port", "1")
    with httpx.Client(timeout=5) as client:
        for _ in range(3):  # port 1 would refuse: every answer came through the socket
            assert client.get(url).json()[0]["name"] == "x"


def test_mysql_query_replaces_the_table_read(mariadb: Any, demo_view: str, run_server: Any) -> None:
    url = start_demo(run_server, mariadb, demo_view, "--mysql-query", "SELECT 1 AS one, NULL AS nothing")
    with httpx.Client(timeout=5) as client:
        assert client.get(url).text == '[{"one":"1","nothing":null}]'
