"""Long MySQL connections and MySQL pools against a private MariaDB (see tests/db_servers.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import asyncmy.errors
import pymysql.err
import pytest
import uvloop

from pyswoole.db import BlockingMySQLConnection, MySQLConnection, is_disconnect, mysql_pool
from pyswoole.pool import PoolTimeoutError

pytest_plugins = ["tests.db_servers"]


def run(coro: Awaitable[Any], timeout: float = 20) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(bounded())


@pytest.fixture
def table(mariadb: Any) -> str:
    mariadb.query("DROP TABLE IF EXISTS items")
    mariadb.query("CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20)) ENGINE=InnoDB")
    return "items"


class Threaded:
    """A BlockingMySQLConnection driven from a coroutine through a thread, so that the same tests
    check both classes."""

    BLOCKING = frozenset({"connect", "query", "execute", "begin", "commit", "rollback", "ping", "close"})

    def __init__(self, conn: BlockingMySQLConnection) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name not in self.BLOCKING:
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = await asyncio.to_thread(attr, *args, **kwargs)
            return self if result is self._conn else result

        return call


@pytest.fixture(params=["asyncmy", "pymysql"])
def flavor(request: pytest.FixtureRequest) -> str:
    """Each long-connection test runs with MySQLConnection (asyncmy) and BlockingMySQLConnection."""
    return request.param


def errors(flavor: str) -> Any:
    return asyncmy.errors if flavor == "asyncmy" else pymysql.err


def connection(mariadb: Any, flavor: str = "asyncmy", **options: Any) -> Any:
    if flavor == "asyncmy":
        return MySQLConnection(**mariadb.connect_options, **options)
    return Threaded(BlockingMySQLConnection(**mariadb.connect_options, **options))


def wait_gone(mariadb: Any, thread_id: int) -> None:
    """Until the server no longer lists the connection (it closes it asynchronously)."""
    deadline = time.monotonic() + 5
    listed = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s"
    while mariadb.query(listed, [thread_id])[0][0]:
        assert time.monotonic() < deadline, f"connection {thread_id} still listed"
        time.sleep(0.01)


def test_dict_rows_and_statement_errors_propagate_without_reconnect(
    mariadb: Any, table: str, flavor: str
) -> None:
    async def main() -> None:
        conn = connection(mariadb, flavor)
        assert await conn.execute("INSERT INTO items (name) VALUES (%s), (%s)", ["a", "b"]) == 2
        assert conn.insert_id == 1
        assert await conn.query("SELECT id, name FROM items ORDER BY id") == [
            {"id": 1, "name": "a"},
            {"id": 2, "name": "b"},
        ]
        assert await conn.query("DO 1") == []
        with pytest.raises(errors(flavor).ProgrammingError) as caught:
            await conn.query("SELEKT 1")
        assert caught.value.args[0] == 1064 and not is_disconnect(caught.value)
        with pytest.raises(errors(flavor).IntegrityError):
            await conn.execute("INSERT INTO items (id, name) VALUES (1, 'dup')")
        assert await conn.query("SELECT COUNT(*) AS n FROM items") == [{"n": 2}]
        assert conn.connects == 1
        await conn.close()

    run(main())


def test_statements_share_one_cursor_yet_each_returns_a_list_of_its_own(mariadb: Any, flavor: str) -> None:
    async def main() -> None:
        conn = connection(mariadb, flavor)
        first = await conn.query("SELECT 1 AS n")
        first.append({"n": 99})
        assert await conn.query("SELECT 2 AS n") == [{"n": 2}]
        assert first == [{"n": 1}, {"n": 99}]
        assert await conn.query("SELECT 1 AS n FROM DUAL WHERE 0") == []
        assert await conn.execute("SELECT 3 AS n UNION SELECT 4") == 2
        assert conn.connects == 1
        await conn.close()

    run(main())


def test_restart_between_two_queries_reconnects_once(mariadb: Any, flavor: str) -> None:
    async def main() -> None:
        conn = connection(mariadb, flavor)
        assert await conn.query("SELECT 1 AS one") == [{"one": 1}]
        before = conn.thread_id
        await asyncio.to_thread(mariadb.restart)
        assert await conn.query("SELECT 2 AS two") == [{"two": 2}]
        assert conn.connects == 2
        assert conn.thread_id != before
        await conn.close()

    run(main())


@pytest.mark.parametrize("settle", [True, False], ids=["after-close", "at-once"])
def test_kill_server_side_reconnects_once(mariadb: Any, settle: bool, flavor: str) -> None:
    async def main() -> None:
        conn = connection(mariadb, flavor)
        await conn.query("SELECT 1")
        killed = conn.thread_id
        mariadb.query(f"KILL {killed}")
        if settle:
            wait_gone(mariadb, killed)
        assert await conn.query("SELECT CONNECTION_ID() AS id") == [{"id": conn.thread_id}]
        assert conn.thread_id != killed
        assert conn.connects == 2
        await conn.close()

    run(main())


def test_wait_timeout_expiry_reconnects_once(mariadb: Any, flavor: str) -> None:
    async def main() -> None:
        conn = connection(mariadb, flavor)
        await conn.execute("SET SESSION wait_timeout = 1")
        expired = conn.thread_id
        await asyncio.to_thread(wait_gone, mariadb, expired)
        assert await conn.query("SELECT @@SESSION.wait_timeout AS t") == [{"t": 28800}]  # a new session
        assert conn.connects == 2
        await conn.close()

    run(main())


def test_a_disconnect_inside_a_transaction_is_not_retried(mariadb: Any, table: str) -> None:
    async def main() -> None:
        conn = connection(mariadb)
        with pytest.raises(asyncmy.errors.OperationalError) as caught:
            async with conn.transaction():
                await conn.execute("INSERT INTO items (name) VALUES ('lost')")
                mariadb.query(f"KILL {conn.thread_id}")
                await conn.execute("INSERT INTO items (name) VALUES ('never')")
        assert is_disconnect(caught.value)
        assert conn.connects == 1 and not conn.in_transaction
        assert mariadb.query("SELECT COUNT(*) FROM items") == ((0,),)  # the server rolled back
        await conn.execute("INSERT INTO items (name) VALUES ('next')")  # the next statement reconnects
        assert conn.connects == 2
        async with conn.transaction():
            await conn.execute("INSERT INTO items (name) VALUES ('kept')")
        assert mariadb.query("SELECT name FROM items ORDER BY id") == (("next",), ("kept",))
        await conn.close()

    run(main())


def test_blocking_transaction_commits_rolls_back_and_is_not_retried(mariadb: Any, table: str) -> None:
    conn = BlockingMySQLConnection(**mariadb.connect_options)
    with conn.transaction():
        conn.execute("INSERT INTO items (name) VALUES ('kept')")
    with pytest.raises(ZeroDivisionError), conn.transaction():
        conn.execute("INSERT INTO items (name) VALUES ('rolled back')")
        1 / 0  # noqa: B018
    with pytest.raises(pymysql.err.OperationalError) as caught, conn.transaction():
        conn.execute("INSERT INTO items (name) VALUES ('lost')")
        mariadb.query(f"KILL {conn.thread_id}")
        conn.execute("INSERT INTO items (name) VALUES ('never')")
    assert is_disconnect(caught.value)
    assert (conn.connects, conn.in_transaction, conn.connected) == (1, False, False)
    assert conn.query("SELECT name FROM items") == [{"name": "kept"}]  # reconnects
    assert conn.connects == 2
    conn.close()


def test_retry_false_and_autocommit_off_do_not_retry(mariadb: Any, table: str, flavor: str) -> None:
    async def main() -> None:
        conn = connection(mariadb, flavor)
        await conn.query("SELECT 1")
        mariadb.query(f"KILL {conn.thread_id}")
        with pytest.raises(errors(flavor).OperationalError):
            await conn.execute("INSERT INTO items (name) VALUES ('x')", retry=False)
        assert conn.connects == 1
        await conn.close()

        manual = connection(mariadb, flavor, autocommit=False)
        await manual.execute("INSERT INTO items (name) VALUES ('uncommitted')")
        assert manual.in_transaction
        mariadb.query(f"KILL {manual.thread_id}")
        with pytest.raises(errors(flavor).OperationalError):
            await manual.query("SELECT COUNT(*) FROM items")
        assert manual.connects == 1
        await manual.execute("INSERT INTO items (name) VALUES ('committed')")
        await manual.commit()
        assert mariadb.query("SELECT name FROM items") == (("committed",),)
        await manual.close()

    run(main())


def test_server_down_raises_the_connect_error_after_one_attempt_then_recovers(
    mariadb: Any, flavor: str
) -> None:
    async def main() -> None:
        conn = connection(mariadb, flavor, connect_timeout=2)
        await conn.query("SELECT 1")
        await asyncio.to_thread(mariadb.stop)
        try:
            with pytest.raises(errors(flavor).OperationalError) as caught:
                await conn.query("SELECT 1")
            assert caught.value.args[0] == 2003  # can't connect: the reconnect failed, no loop
            assert is_disconnect(caught.value.__cause__)
        finally:
            await asyncio.to_thread(mariadb.start)
        assert await conn.query("SELECT 3 AS three") == [{"three": 3}]
        assert conn.connects == 2
        await conn.close()

    run(main())


def test_a_second_coroutine_on_a_busy_connection_gets_a_clear_error(mariadb: Any) -> None:
    async def main() -> None:
        conn = connection(mariadb)
        slow = asyncio.create_task(conn.query("SELECT SLEEP(0.2) AS s"))
        await asyncio.sleep(0.05)
        with pytest.raises(
            asyncmy.errors.ProgrammingError, match="busy with a statement of another coroutine"
        ):
            await conn.query("SELECT 1")
        assert await slow == [{"s": 0}]  # the first statement was not disturbed
        assert await conn.query("SELECT 2 AS two") == [{"two": 2}]
        assert conn.connects == 1
        await conn.close()

    run(main())


def test_a_query_cancelled_mid_flight_leaves_a_connection_that_reconnects(mariadb: Any) -> None:
    async def main() -> None:
        conn = connection(mariadb)
        await conn.query("SELECT 1")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conn.query("SELECT SLEEP(1)"), 0.1)  # its reply will never be read
        assert await conn.query("SELECT 3 AS three") == [{"three": 3}]
        assert conn.connects == 2
        await conn.close()

    run(main())


def test_200_coroutines_through_a_pool_of_10_stay_within_10_server_connections(mariadb: Any) -> None:
    async def main() -> None:
        monitor = await connection(mariadb).connect()

        async def threads_connected() -> int:
            rows = await monitor.query("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
            return int(rows[0]["Value"])

        baseline = await threads_connected()  # the monitor itself (and nothing else)
        pool = mysql_pool(**mariadb.connect_options, size=10)
        done = asyncio.Event()
        peak = baseline

        async def watch() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, await threads_connected())
                await asyncio.sleep(0.002)

        async def client(n: int) -> int:
            async with pool.acquire() as conn:
                rows = await conn.query("SELECT %s AS n, SLEEP(0.01) AS s", [n])
            return rows[0]["n"]

        watcher = asyncio.create_task(watch())
        answers = await asyncio.gather(*(client(n) for n in range(200)))
        done.set()
        await watcher
        assert answers == list(range(200))
        assert baseline + 1 < peak <= baseline + 10
        stats = pool.stats()
        assert (stats["created"], stats["idle"], stats["in_use"], stats["waiting"]) == (10, 10, 0, 0)
        await pool.close()
        await monitor.close()

    run(main())


def test_exhausted_mysql_pool_raises_after_acquire_timeout(mariadb: Any) -> None:
    async def main() -> None:
        pool = mysql_pool(**mariadb.connect_options, size=2, acquire_timeout=0.2)
        held = [await pool.get(), await pool.get()]
        started = time.monotonic()
        with pytest.raises(PoolTimeoutError):
            async with pool.acquire() as conn:
                await conn.query("SELECT 1")
        assert 0.18 <= time.monotonic() - started < 1.0
        assert pool.stats()["timeouts"] == 1
        for conn in held:
            pool.put(conn)
        await pool.close()

    run(main())


def test_pooled_connections_survive_kill_and_restart(mariadb: Any) -> None:
    async def main() -> None:
        # a killed idle connection: idle too long, so pinged, found dead and replaced
        pool = mysql_pool(**mariadb.connect_options, size=1, min_idle=1, max_idle_time=0.05)
        async with pool.acquire() as conn:
            first_id = conn.thread_id
        mariadb.query(f"KILL {first_id}")
        await asyncio.sleep(0.1)
        async with pool.acquire() as conn:
            assert (await conn.query("SELECT CONNECTION_ID() AS id"))[0]["id"] != first_id
            assert conn.connects == 1  # a new pooled connection, not a reconnect
        assert pool.stats()["created"] == 2 and pool.stats()["closed"] == 1
        await pool.close()

        # a restart while idle for less than max_idle_time: the connection reconnects by itself
        pool = mysql_pool(**mariadb.connect_options, size=1)
        async with pool.acquire() as conn:
            await conn.query("SELECT 1")
        await asyncio.to_thread(mariadb.restart)
        async with pool.acquire() as conn:
            assert await conn.query("SELECT 5 AS five") == [{"five": 5}]
            assert conn.connects == 2
        await pool.close()

    run(main())


def test_a_connection_given_back_mid_transaction_is_closed_and_rolled_back(mariadb: Any, table: str) -> None:
    async def main() -> None:
        pool = mysql_pool(**mariadb.connect_options, size=1)
        async with pool.acquire() as conn:
            await conn.begin()
            await conn.execute("INSERT INTO items (name) VALUES ('forgotten')")
        async with pool.acquire() as conn:
            assert not conn.in_transaction
            assert await conn.query("SELECT COUNT(*) AS n FROM items") == [{"n": 0}]
        assert pool.stats()["created"] == 2
        await pool.close()

    run(main())


def test_unix_socket_connection(mariadb: Any) -> None:
    async def main() -> None:
        conn = MySQLConnection(user="root", password="", db="test", unix_socket=mariadb.socket)
        assert await conn.query("SELECT @@socket AS s") == [{"s": mariadb.socket}]
        await conn.close()

    run(main())
