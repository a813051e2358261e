"""MySQL/MariaDB on asyncmy: a long connection that reconnects once, and a pool of them.

A ``MySQLConnection`` stays open across requests. When a statement fails because the connection is
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
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncmy
from asyncmy.cursors import DictCursor
from asyncmy.errors import InterfaceError, MySQLError

from pyswoole.pool import ConnectionPool

__all__ = ["DISCONNECT_ERRORS", "MySQLConnection", "is_disconnect", "mysql_pool"]

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
    """True if ``exc`` means the connection is unusable (as opposed to an error in the statement)."""
    if isinstance(exc, MySQLError):
        code = exc.args[0] if exc.args else None
        # asyncmy raises InterfaceError(0, ...) for a connection it already closed after a failure
        return code in DISCONNECT_ERRORS or (isinstance(exc, InterfaceError) and code == 0)
    return isinstance(exc, (ConnectionError, asyncio.IncompleteReadError))


class MySQLConnection:
    """A long MySQL connection that reconnects once and retries once after a disconnect.

    Keyword options besides the named ones go to ``asyncmy.connect`` (``unix_socket``, ``charset``,
    ``read_timeout``, ...). ``autocommit`` is on by default: each statement stands alone, so it can
    be retried, and a long connection never holds an old snapshot open.
    """

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
            db=db,
            autocommit=autocommit,
            connect_timeout=connect_timeout,
            **options,
        )
        self.autocommit = autocommit
        self.connects = 0  # connections opened so far (the first one and each reconnect)
        self.affected_rows = 0
        self.insert_id = 0
        self._conn: asyncmy.Connection | None = None
        self._in_transaction = False
        self._closed = False

    def __repr__(self) -> str:
        state = "open" if self.connected else "closed"
        return f"<MySQLConnection {self.options['host']}:{self.options['port']} {state} connects={self.connects}>"

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.connected

    @property
    def in_transaction(self) -> bool:
        return self._in_transaction

    @property
    def thread_id(self) -> int | None:
        """The server's id of this connection (``CONNECTION_ID()``, the id ``KILL`` takes)."""
        return self._conn.server_thread_id[0] if self._conn is not None else None

    async def connect(self) -> MySQLConnection:
        """Open the connection (again); returns self."""
        self._drop()
        self._closed = False
        self._conn = await asyncmy.connect(**self.options)
        self.connects += 1
        return self

    async def query(
        self, sql: str, args: Sequence[Any] | dict[str, Any] | None = None, *, retry: bool = True
    ) -> list[dict[str, Any]]:
        """Run a statement and return its rows as dicts (``[]`` for a statement without rows)."""
        try:
            return await self._query(sql, args)
        except Exception as exc:
            await self._recover(exc, retry)
        return await self._query(sql, args)

    async def execute(
        self, sql: str, args: Sequence[Any] | dict[str, Any] | None = None, *, retry: bool = True
    ) -> int:
        """Run a statement and return the number of affected rows (``insert_id`` is set too)."""
        try:
            return await self._execute(sql, args)
        except Exception as exc:
            await self._recover(exc, retry)
        return await self._execute(sql, args)

    async def begin(self) -> None:
        """Start a transaction: until ``commit``/``rollback``, a disconnect is never retried."""
        if self._in_transaction:
            raise InterfaceError(0, "a transaction is already open on this connection")
        try:
            await (await self._driver()).begin()
        except Exception as exc:
            await self._recover(exc, True)
            await (await self._driver()).begin()
        self._in_transaction = True

    async def commit(self) -> None:
        try:
            await (await self._driver()).commit()
        except Exception as exc:
            if is_disconnect(exc):
                self._drop()
            raise
        finally:
            self._in_transaction = False

    async def rollback(self) -> None:
        try:
            await (await self._driver()).rollback()
        except Exception as exc:
            if is_disconnect(exc):
                self._drop()
            raise
        finally:
            self._in_transaction = False

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
        conn, self._conn = self._conn, None
        self._in_transaction = False
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.ensure_closed()

    # -- internals ------------------------------------------------------------------------------

    async def _driver(self) -> asyncmy.Connection:
        if self._conn is None:
            await self.connect()
        return self._conn  # type: ignore[return-value]

    async def _query(self, sql: str, args: Any) -> list[dict[str, Any]]:
        conn = self._conn if self._conn is not None else await self._driver()
        async with conn.cursor(DictCursor) as cursor:
            self.affected_rows = await cursor.execute(sql, args)
            rows = await cursor.fetchall()
        self.insert_id = conn.insert_id()
        if not self.autocommit:
            self._in_transaction = True
        return list(rows) if rows else []

    async def _execute(self, sql: str, args: Any) -> int:
        conn = self._conn if self._conn is not None else await self._driver()
        async with conn.cursor() as cursor:
            self.affected_rows = await cursor.execute(sql, args)
        self.insert_id = conn.insert_id()
        if not self.autocommit:
            self._in_transaction = True
        return self.affected_rows

    async def _recover(self, exc: Exception, retry: bool) -> None:
        """Return after reconnecting if ``exc`` is a disconnect that may be retried; else raise it."""
        if not is_disconnect(exc):
            raise exc
        in_transaction, self._in_transaction = self._in_transaction, False
        self._drop()
        if in_transaction or not retry:
            raise exc
        log.info("MySQL connection lost (%s); reconnecting once and retrying", exc)
        try:
            await self.connect()
        except Exception as connect_exc:
            raise connect_exc from exc

    def _drop(self) -> None:
        """Forget a connection without talking to the server (it is broken or being replaced)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


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
