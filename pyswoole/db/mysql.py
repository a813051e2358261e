"""MySQL/MariaDB: a long connection that reconnects once, and a pool of them.

A ``MySQLConnection`` (coroutines, on asyncmy) or ``BlockingMySQLConnection`` (blocking or hooked
code, on pymysql) stays open across requests. When a statement fails because the connection is
gone (2006 "server has gone away", 2013 "lost connection during query", and the equivalents listed in
``DISCONNECT_ERRORS``), it reconnects once and runs the statement once more, if that is safe:

* never inside a transaction (after ``begin()``, or any statement with ``autocommit=False``): the
  server rolled the transaction back with the connection, so replaying one statement would commit
  half of it. The error propagates, the transaction is over, and the next statement reconnects;
* never for ``commit()``/``rollback()``, whose outcome is unknown when the reply is lost;
* not when the caller passes ``retry=False``: a write whose reply was lost (2013 in mid-query) may
  have been applied before the connection broke, so a non-idempotent autocommit write can opt out.

Any other error, and a second failure, propagates unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import asyncmy
import pymysql
from asyncmy.cursors import DictCursor
from asyncmy.errors import InterfaceError, MySQLError, ProgrammingError

from pyswoole.pool import ConnectionPool

__all__ = ["DISCONNECT_ERRORS", "BlockingMySQLConnection", "MySQLConnection", "is_disconnect", "mysql_pool"]

log = logging.getLogger("pyswoole")

DISCONNECT_ERRORS = frozenset(
    {
        2006,  # CR_SERVER_GONE_ERROR: MySQL server has gone away
        2013,  # CR_SERVER_LOST: Lost connection to MySQL server during query
        2055,  # CR_SERVER_LOST_EXTENDED: Lost connection to MySQL server at '...', system error
        1053,  # ER_SERVER_SHUTDOWN: server shutdown in progress
        1927,  # ER_CONNECTION_KILLED (MariaDB): connection was killed
        4031,  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8): disconnected after wait_timeout
    }
)


def is_disconnect(exc: BaseException) -> bool:
    """True if ``exc`` means the connection is unusable (as opposed to an error in the statement).

    Knows the errors of asyncmy and of pymysql (the same codes; both raise InterfaceError with code
    0 for a connection they already closed after a failure)."""
    if isinstance(exc, (MySQLError, pymysql.err.MySQLError)):
        code = exc.args[0] if exc.args else None
        interface_error = isinstance(exc, (InterfaceError, pymysql.err.InterfaceError))
        return code in DISCONNECT_ERRORS or (interface_error and code == 0)
    return isinstance(exc, (ConnectionError, asyncio.IncompleteReadError))


Args = Sequence[Any] | dict[str, Any] | None


class _LongConnection:
    """What the coroutine and the blocking long connections share: settings, counters, and the
    rule for when a failed statement is retried."""

    _usage_error: type[Exception]  # the driver's ProgrammingError (misuse, not a disconnect)

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 3306,
        user: str = "root",
        password: str = "",
        db: str | None = None,
        *,
        autocommit: bool = True,
        connect_timeout: float = 5,
        **options: Any,
    ) -> None:
        self.options: dict[str, Any] = dict(
            host=host,
            port=port,
            user=user,
            password=password,
            database=options.pop("database", db),  # the drivers' own name for db is accepted too
            autocommit=autocommit,
            connect_timeout=connect_timeout,
            **options,
        )
        self.autocommit = autocommit
        self.connects = 0  # connections opened so far (the first one and each reconnect)
        self.affected_rows = 0
        self.insert_id = 0
        self._conn: Any = None
        self._cursor: Any = None  # the one cursor of self._conn, reused by every statement
        self._in_transaction = False
        self._busy = False

    def __repr__(self) -> str:
        where = self.options.get("unix_socket") or f"{self.options['host']}:{self.options['port']}"
        state = "open" if self.connected else "closed"
        return f"<{type(self).__name__} {where} {state} connects={self.connects}>"

    @property
    def in_transaction(self) -> bool:
        return self._in_transaction

    @property
    def thread_id(self) -> int | None:
        """The server's id of this connection (``CONNECTION_ID()``, the id ``KILL`` takes)."""
        return self._conn.server_thread_id[0] if self._conn is not None else None

    def _claim(self) -> None:
        """One statement at a time: a second coroutine using the connection meanwhile would
        interleave packets on the wire, so it gets a clear error instead."""
        if self._busy:
            raise self._usage_error(
                0,
                f"{type(self).__name__} is busy with a statement of another coroutine: "
                "give each coroutine its own connection (or use a pool)",
            )
        self._busy = True

    def _record(self, cursor: Any, affected_rows: int) -> None:
        self.affected_rows = affected_rows
        self.insert_id = cursor.lastrowid
        if not self.autocommit:
            self._in_transaction = True

    def _check_retry(self, exc: Exception, retry: bool) -> None:
        """Raise ``exc`` unless it is a disconnect that may be retried; either way a broken
        connection is dropped (and a transaction it carried is over)."""
        if not is_disconnect(exc):
            raise exc
        in_transaction, self._in_transaction = self._in_transaction, False
        self._drop()
        if in_transaction or not retry:
            raise exc
        log.info("MySQL connection lost (%s); reconnecting once and retrying", exc)

    def _finish_transaction(self, exc: BaseException | None) -> None:
        self._in_transaction = False
        if exc is not None and is_disconnect(exc):
            self._drop()

    @property
    def connected(self) -> bool:
        raise NotImplementedError

    def _drop(self) -> None:
        """Forget a connection that is broken or being replaced (closing its socket)."""
        raise NotImplementedError


class MySQLConnection(_LongConnection):
    """A long MySQL connection for coroutines (asyncmy) that reconnects once and retries once.

    Keyword options besides the named ones go to ``asyncmy.connect`` (``unix_socket``, ``charset``,
    ``read_timeout``, ...). ``autocommit`` is on by default: each statement stands alone, so it can
    be retried, and a long connection never holds an old snapshot open.
    """

    _conn: asyncmy.Connection | None
    _usage_error = ProgrammingError

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.connected

    def _drop(self) -> None:
        conn, self._conn, self._cursor = self._conn, None, None
        if conn is not None:
            conn.close()  # asyncmy: closes the transport, sends nothing

    async def connect(self) -> MySQLConnection:
        """Open the connection (again); returns self."""
        self._drop()
        conn = await asyncmy.connect(**self.options)
        self._conn, self._cursor = conn, conn.cursor(DictCursor)
        self.connects += 1
        return self

    async def query(self, sql: str, args: Args = None, *, retry: bool = True) -> list[dict[str, Any]]:
        """Run a statement and return its rows as dicts (``[]`` for a statement without rows)."""
        self._claim()
        try:
            try:
                if self._cursor is None:
                    await self.connect()
                cursor = self._cursor
                affected_rows = await cursor.execute(sql, args)
            except Exception as exc:
                await self._reconnect_or_raise(exc, retry)
                cursor = self._cursor
                affected_rows = await cursor.execute(sql, args)
            rows = await cursor.fetchall()  # the cursor's own list: it makes a new one per statement
            self._record(cursor, affected_rows)
            return rows if isinstance(rows, list) else list(rows)
        finally:
            self._busy = False

    async def execute(self, sql: str, args: Args = None, *, retry: bool = True) -> int:
        """Run a statement and return the number of affected rows (``insert_id`` is set too)."""
        await self.query(sql, args, retry=retry)
        return self.affected_rows

    async def begin(self) -> None:
        """Start a transaction: until ``commit``/``rollback``, a disconnect is never retried."""
        if self._in_transaction:
            raise self._usage_error(0, "a transaction is already open on this connection")
        self._claim()
        try:
            try:
                await (await self._driver()).begin()
            except Exception as exc:
                await self._reconnect_or_raise(exc, True)
                await (await self._driver()).begin()
            self._in_transaction = True
        finally:
            self._busy = False

    async def commit(self) -> None:
        """Commit; a disconnect here is never retried (whether the commit happened is unknown)."""
        await self._end_transaction("commit")

    async def rollback(self) -> None:
        await self._end_transaction("rollback")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[MySQLConnection]:
        """``async with conn.transaction():`` begins, then commits, or rolls back on an exception."""
        await self.begin()
        try:
            yield self
        except BaseException:
            if self.connected:
                try:
                    await self.rollback()
                except Exception:
                    self._drop()  # state unknown: never reuse it
            self._in_transaction = False
            raise
        await self.commit()

    async def ping(self) -> None:
        """Check the connection with a round trip (no reconnect): raises if it is broken."""
        if self._conn is None:
            raise InterfaceError(0, "Not connected")
        await self._conn.ping(reconnect=False)

    async def close(self) -> None:
        """Say goodbye to the server and close; a later statement reconnects."""
        conn, self._conn, self._cursor = self._conn, None, None
        self._in_transaction = False
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.ensure_closed()

    async def _driver(self) -> asyncmy.Connection:
        if self._conn is None:
            await self.connect()
        return self._conn  # type: ignore[return-value]

    async def _end_transaction(self, verb: str) -> None:
        self._claim()
        error = None
        try:
            await getattr(await self._driver(), verb)()
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._busy = False
            self._finish_transaction(error)

    async def _reconnect_or_raise(self, exc: Exception, retry: bool) -> None:
        self._check_retry(exc, retry)
        try:
            await self.connect()
        except Exception as connect_exc:
            raise connect_exc from exc


class BlockingMySQLConnection(_LongConnection):
    """The same long connection for blocking code, on pymysql, with the same reconnect rule.

    Under the runtime hooks (``pyswoole.runtime.enable_coroutine``) pymysql's socket calls suspend
    only the calling coroutine, so this works inside ``go(fn)`` and hooked server callbacks; outside
    them it simply blocks.
    """

    _conn: pymysql.connections.Connection | None
    _usage_error = pymysql.err.ProgrammingError

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.open

    def _drop(self) -> None:
        conn, self._conn, self._cursor = self._conn, None, None
        if conn is not None and conn.open:
            with contextlib.suppress(Exception):  # a QUIT on a broken socket fails; it closes anyway
                conn.close()

    def connect(self) -> BlockingMySQLConnection:
        """Open the connection (again); returns self."""
        self._drop()
        conn = pymysql.connect(**self.options)
        self._conn, self._cursor = conn, conn.cursor(pymysql.cursors.DictCursor)
        self.connects += 1
        return self

    def query(self, sql: str, args: Args = None, *, retry: bool = True) -> list[dict[str, Any]]:
        """Run a statement and return its rows as dicts (``[]`` for a statement without rows)."""
        self._claim()
        try:
            try:
                if self._cursor is None:
                    self.connect()
                cursor = self._cursor
                affected_rows = cursor.execute(sql, args)
            except Exception as exc:
                self._reconnect_or_raise(exc, retry)
                cursor = self._cursor
                affected_rows = cursor.execute(sql, args)
            rows = cursor.fetchall()  # the cursor's own list: it makes a new one per statement
            self._record(cursor, affected_rows)
            return rows if isinstance(rows, list) else list(rows)
        finally:
            self._busy = False

    def execute(self, sql: str, args: Args = None, *, retry: bool = True) -> int:
        """Run a statement and return the number of affected rows (``insert_id`` is set too)."""
        self.query(sql, args, retry=retry)
        return self.affected_rows

    def begin(self) -> None:
        """Start a transaction: until ``commit``/``rollback``, a disconnect is never retried."""
        if self._in_transaction:
            raise self._usage_error(0, "a transaction is already open on this connection")
        self._claim()
        try:
            try:
                self._driver().begin()
            except Exception as exc:
                self._reconnect_or_raise(exc, True)
                self._driver().begin()
            self._in_transaction = True
        finally:
            self._busy = False

    def commit(self) -> None:
        """Commit; a disconnect here is never retried (whether the commit happened is unknown)."""
        self._end_transaction("commit")

    def rollback(self) -> None:
        self._end_transaction("rollback")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[BlockingMySQLConnection]:
        """``with conn.transaction():`` begins, then commits, or rolls back on an exception."""
        self.begin()
        try:
            yield self
        except BaseException:
            if self.connected:
                try:
                    self.rollback()
                except Exception:
                    self._drop()
            self._in_transaction = False
            raise
        self.commit()

    def ping(self) -> None:
        """Check the connection with a round trip (no reconnect): raises if it is broken."""
        if self._conn is None:
            raise pymysql.err.InterfaceError(0, "Not connected")
        self._conn.ping(reconnect=False)

    def close(self) -> None:
        """Say goodbye to the server and close; a later statement reconnects."""
        self._in_transaction = False
        self._drop()

    def _driver(self) -> pymysql.connections.Connection:
        if self._conn is None:
            self.connect()
        return self._conn  # type: ignore[return-value]

    def _end_transaction(self, verb: str) -> None:
        self._claim()
        error = None
        try:
            getattr(self._driver(), verb)()
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._busy = False
            self._finish_transaction(error)

    def _reconnect_or_raise(self, exc: Exception, retry: bool) -> None:
        self._check_retry(exc, retry)
        try:
            self.connect()
        except Exception as connect_exc:
            raise connect_exc from exc


def mysql_pool(
    host: str = "127.0.0.1",
    port: int = 3306,
    user: str = "root",
    password: str = "",
    db: str | None = None,
    size: int = 64,
    *,
    min_idle: int = 0,
    max_idle_time: float = 60,
    max_lifetime: float | None = None,
    acquire_timeout: float = 5,
    **options: Any,
) -> ConnectionPool[MySQLConnection]:
    """A pool of up to ``size`` ``MySQLConnection``s (each reconnects once on its own).

    An idle connection is pinged (COM_PING) before it is handed out after ``max_idle_time``; one
    given back with a transaction still open is closed, which makes the server roll it back.
    ``options`` go to ``MySQLConnection`` (and on to ``asyncmy.connect``).
    """

    async def factory() -> MySQLConnection:
        return await MySQLConnection(host, port, user, password, db, **options).connect()

    return ConnectionPool(
        factory,
        size,
        min_idle=min_idle,
        max_idle_time=max_idle_time,
        max_lifetime=max_lifetime,
        ping=MySQLConnection.ping,
        acquire_timeout=acquire_timeout,
        close=MySQLConnection.close,
        reusable=lambda conn: not conn.in_transaction,
    )
