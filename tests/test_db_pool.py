"""pyswoole.pool.ConnectionPool over real TCP connections to a small line-echo server run by each test."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from pyswoole.coroutine.runner import start
from pyswoole.pool import ConnectionPool, PoolClosedError, PoolError, PoolTimeoutError


def run(coro: Awaitable[Any], timeout: float = 10) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


class EchoServer:
    """Answers each line with the same line; counts connections; can drop them all."""

    def __init__(self) -> None:
        self.accepted = 0
        self.open = 0
        self.peak = 0
        self.writers: set[asyncio.StreamWriter] = set()
        self.mute = False  # read but do not answer (a peer that hangs)
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> EchoServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        self.drop_all()
        await self.wait_open(0)
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self.peak = max(self.peak, self.open)
        self.writers.add(writer)
        try:
            while line := await reader.readline():
                if self.mute:
                    continue
                writer.write(line)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            self.writers.discard(writer)
            writer.close()

    def drop_all(self) -> None:
        for writer in list(self.writers):
            writer.transport.abort()

    async def wait_open(self, count: int) -> None:
        async with asyncio.timeout(2):
            while self.open != count:
                await asyncio.sleep(0.005)


class LineClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.pings = 0

    async def ask(self, text: str) -> str:
        self.writer.write(text.encode() + b"\n")
        reply = await self.reader.readline()
        if not reply:
            raise ConnectionResetError("server closed the connection")
        return reply.decode().rstrip("\n")

    async def aclose(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


def client_factory(server: EchoServer) -> Callable[[], Awaitable[LineClient]]:
    async def factory() -> LineClient:
        return LineClient(*await asyncio.open_connection("127.0.0.1", server.port))

    return factory


async def ping(client: LineClient) -> bool:
    client.pings += 1
    return await client.ask("ping") == "ping"


def test_a_connection_is_reused_and_answers() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(client_factory(server), size=4, ping=ping)
            for n in range(5):
                async with pool.acquire() as conn:
                    assert await conn.ask(f"hello {n}") == f"hello {n}"
            assert server.accepted == 1
            assert pool.stats() == {
                "size": 4, "in_use": 0, "idle": 1, "waiting": 0, "created": 1, "closed": 0, "timeouts": 0
            }  # fmt: skip
            await pool.close()
            await server.wait_open(0)

    run(main())


def test_many_coroutines_share_at_most_size_connections() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(client_factory(server), size=5)
            in_use_seen = []

            async def worker(n: int) -> str:
                async with pool.acquire() as conn:
                    in_use_seen.append(pool.stats()["in_use"])
                    await asyncio.sleep(0.002)
                    return await conn.ask(str(n))

            answers = await asyncio.gather(*(worker(n) for n in range(100)))
            assert answers == [str(n) for n in range(100)]
            assert server.peak == 5
            assert max(in_use_seen) == 5
            stats = pool.stats()
            assert (stats["created"], stats["idle"], stats["in_use"], stats["waiting"]) == (5, 5, 0, 0)
            await pool.close()

    run(main())


def test_coroutines_that_acquire_again_and_again_never_exceed_size() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(client_factory(server), size=3)

            async def worker(n: int) -> list[str]:
                answers = []
                for i in range(20):  # get again right after put, while others wait
                    async with pool.acquire() as conn:
                        answers.append(await conn.ask(f"{n}.{i}"))
                return answers

            results = await asyncio.gather(*(worker(n) for n in range(10)))
            assert results == [[f"{n}.{i}" for i in range(20)] for n in range(10)]
            assert (server.accepted, server.peak, pool.stats()["created"]) == (3, 3, 3)
            await pool.close()

    run(main())


def test_callbacks_started_eagerly_outside_any_task_share_the_pool() -> None:
    """Server callbacks run eagerly (no asyncio Task until they first suspend): waiting, timing out
    and being handed a connection must all work there."""

    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(client_factory(server), size=3, acquire_timeout=2)
            loop = asyncio.get_running_loop()
            answers: list[str] = []
            failures: list[BaseException] = []
            finished = asyncio.Event()

            async def callback(n: int) -> None:
                try:
                    async with pool.acquire() as conn:
                        answers.append(await conn.ask(str(n)))
                except BaseException as exc:
                    failures.append(exc)
                if len(answers) + len(failures) == 60:
                    finished.set()

            for n in range(60):
                loop.call_soon(start, callback(n))
            await asyncio.wait_for(finished.wait(), 5)
            assert failures == []
            assert sorted(answers, key=int) == [str(n) for n in range(60)]
            assert server.peak == 3

            held = [await pool.get() for _ in range(3)]
            timed_out: asyncio.Future[BaseException] = loop.create_future()

            async def starved() -> None:
                try:
                    await pool.get(timeout=0.05)
                except BaseException as exc:
                    timed_out.set_result(exc)

            loop.call_soon(start, starved())
            assert isinstance(await asyncio.wait_for(timed_out, 2), PoolTimeoutError)
            for conn in held:
                pool.put(conn)
            await pool.close()

    run(main())


def test_waiters_are_served_first_come_first_served() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(client_factory(server), size=1)
            held = await pool.get()
            order = []

            async def waiter(n: int) -> None:
                conn = await pool.get()
                order.append(n)
                pool.put(conn)

            tasks = [asyncio.create_task(waiter(n)) for n in range(5)]
            await asyncio.sleep(0.01)
            assert pool.stats()["waiting"] == 5
            pool.put(held)
            await asyncio.gather(*tasks)
            assert order == [0, 1, 2, 3, 4]
            assert server.accepted == 1
            await pool.close()

    run(main())


def test_exhausted_pool_raises_after_acquire_timeout() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(client_factory(server), size=2, acquire_timeout=0.3)
            held = [await pool.get(), await pool.get()]
            started = time.monotonic()
            with pytest.raises(PoolTimeoutError, match=r"no free connection within 0\.3 s: all 2 are in use"):
                async with pool.acquire():
                    pass
            assert 0.28 <= time.monotonic() - started < 1.0
            started = time.monotonic()
            with pytest.raises(TimeoutError):  # PoolTimeoutError is a TimeoutError; timeout per call
                await pool.get(timeout=0.05)
            assert time.monotonic() - started < 0.25
            stats = pool.stats()
            assert (stats["timeouts"], stats["waiting"], stats["in_use"], stats["created"]) == (2, 0, 2, 2)
            for conn in held:
                pool.put(conn)
            async with pool.acquire() as conn:  # usable again
                assert await conn.ask("x") == "x"
            await pool.close()

    run(main())


def test_an_exception_in_the_block_discards_the_connection() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(client_factory(server), size=2)
            with pytest.raises(ZeroDivisionError):
                async with pool.acquire() as conn:
                    await conn.ask("a")
                    1 / 0  # noqa: B018
            await server.wait_open(0)
            async with pool.acquire() as conn:
                assert await conn.ask("b") == "b"
            assert server.accepted == 2
            stats = pool.stats()
            assert (stats["created"], stats["closed"], stats["idle"]) == (2, 1, 1)
            await pool.close()

    run(main())


def test_a_broken_connection_put_back_is_never_handed_out_again() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(client_factory(server), size=2)
            first = await pool.get()
            server.drop_all()
            with pytest.raises(ConnectionError):
                await first.ask("lost")
            pool.put(first, broken=True)
            second = await pool.get()
            assert second is not first
            assert await second.ask("ok") == "ok"
            pool.put(second)
            await pool.close()

    run(main())


def test_idle_too_long_is_pinged_before_hand_out() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            # size=min_idle=1: the maintenance pass keeps the one idle connection, pinged on hand-out
            pool = ConnectionPool(client_factory(server), size=1, min_idle=1, max_idle_time=0.05, ping=ping)
            async with pool.acquire() as conn:
                first = conn
            async with pool.acquire() as conn:  # fresh: no ping
                assert conn is first and conn.pings == 0
            await asyncio.sleep(0.08)
            async with pool.acquire() as conn:  # idle too long, alive: pinged and reused
                assert conn is first and conn.pings == 1
            await asyncio.sleep(0.08)
            server.drop_all()
            await server.wait_open(0)
            async with pool.acquire() as conn:  # idle too long, dead: ping fails, replaced
                assert conn is not first
                assert await conn.ask("new") == "new"
            assert server.accepted == 2
            assert pool.stats()["closed"] == 1
            await pool.close()

    run(main())


def test_a_ping_that_hangs_counts_as_failed_after_acquire_timeout() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(
                client_factory(server), size=1, min_idle=1, max_idle_time=0.05, ping=ping, acquire_timeout=0.2
            )
            async with pool.acquire() as conn:
                first = conn
            await asyncio.sleep(0.08)
            server.mute = True
            started = time.monotonic()
            async with pool.acquire() as conn:
                assert conn is not first and first.pings == 1
            assert 0.18 <= time.monotonic() - started < 1.0
            await pool.close()

    run(main())


def test_without_ping_an_idle_too_long_connection_is_replaced() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(client_factory(server), size=2, max_idle_time=0.05)
            async with pool.acquire() as conn:
                first = conn
            await asyncio.sleep(0.08)
            async with pool.acquire() as conn:
                assert conn is not first
            assert server.accepted == 2
            await pool.close()

    run(main())


def test_max_lifetime_replaces_old_connections() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(client_factory(server), size=2, max_lifetime=0.1, ping=ping)
            async with pool.acquire() as conn:
                first = conn
                await asyncio.sleep(0.12)
            async with pool.acquire() as conn:  # expired on return: a new one
                assert conn is not first
            await pool.close()
            assert pool.stats()["created"] == 2

    run(main())


def test_min_idle_is_filled_and_surplus_idle_connections_are_closed() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(client_factory(server), size=6, min_idle=2, max_idle_time=0.1, ping=ping)
            await pool.fill()
            assert (pool.stats()["idle"], server.accepted) == (2, 2)
            held = [await pool.get() for _ in range(6)]
            for conn in held:
                pool.put(conn)
            assert pool.stats()["idle"] == 6
            await server.wait_open(6)
            async with asyncio.timeout(3):  # the maintenance pass shrinks back to min_idle
                while pool.stats()["idle"] > 2:
                    await asyncio.sleep(0.02)
            await server.wait_open(2)
            await pool.close()
            await server.wait_open(0)

    run(main())


def test_factory_failure_propagates_and_frees_its_room() -> None:
    async def main() -> None:
        attempts = 0

        async with EchoServer() as server:
            good = client_factory(server)

            async def flaky() -> LineClient:
                nonlocal attempts
                attempts += 1
                if attempts == 1:
                    return LineClient(*await asyncio.open_connection("127.0.0.1", free_tcp_port()))
                return await good()

            pool = ConnectionPool(flaky, size=1, acquire_timeout=0.5)
            with pytest.raises(ConnectionRefusedError):
                await pool.get()
            stats = pool.stats()
            assert (stats["created"], stats["in_use"], stats["idle"]) == (0, 0, 0)
            async with pool.acquire() as conn:  # the failed attempt did not keep its room
                assert await conn.ask("up") == "up"
            await pool.close()

    run(main())


def free_tcp_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_cancelled_waiter_loses_no_connection() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(client_factory(server), size=1)
            held = await pool.get()
            waiter = asyncio.create_task(pool.get())
            await asyncio.sleep(0.01)
            waiter.cancel()
            pool.put(held)  # handed to the waiter, which is cancelled before it runs: passed on
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert pool.stats()["idle"] == 1
            async with pool.acquire() as conn:
                assert conn is held
            await pool.close()

    run(main())


def test_close_refuses_gets_fails_waiters_and_closes_lent_connections_on_return() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(client_factory(server), size=2)
            lent = await pool.get()
            async with pool.acquire():
                pass
            assert pool.stats()["idle"] == 1
            other = await pool.get()
            waiter = asyncio.create_task(pool.get())
            await asyncio.sleep(0.01)
            await pool.close()
            with pytest.raises(PoolClosedError):
                await waiter
            with pytest.raises(PoolClosedError):
                await pool.get()
            assert server.open == 2
            pool.put(lent)
            pool.put(other)
            await server.wait_open(0)
            assert pool.stats()["closed"] == 2

    run(main())


def test_put_rejects_a_foreign_connection() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(client_factory(server), size=1)
            stranger = await client_factory(server)()
            with pytest.raises(PoolError, match="not a connection lent by this pool"):
                pool.put(stranger)
            await stranger.aclose()
            await pool.close()

    run(main())


def test_reusable_check_closes_unfit_connections() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(client_factory(server), size=1, reusable=lambda conn: not conn.dirty)
            async with pool.acquire() as conn:
                conn.dirty = True
            async with pool.acquire() as conn:
                assert not getattr(conn, "dirty", False)
            assert server.accepted == 2
            await pool.close()

    LineClient.dirty = False
    run(main())


def test_bad_settings_are_refused() -> None:
    async def factory() -> None:
        return None

    for bad in ({"size": 0}, {"min_idle": 5, "size": 2}, {"max_idle_time": 0}, {"max_lifetime": -1}):
        with pytest.raises(ValueError):
            ConnectionPool(factory, **bad)


def test_a_forked_child_forgets_the_parents_connections_and_opens_its_own() -> None:
    async def main() -> None:
        async with EchoServer() as server:
            pool = ConnectionPool(client_factory(server), size=2)
            async with pool.acquire() as conn:
                parent_conn = conn
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # child: a new loop in a new thread (the parent's loop is not ours to run)
                report: dict[str, Any] = {"inherited": pool.stats()}

                async def child() -> None:
                    async with pool.acquire() as conn:
                        report["new_conn"] = conn is not parent_conn
                        report["answer"] = await conn.ask("from child")
                    await pool.close()

                def child_thread() -> None:
                    try:
                        asyncio.run(asyncio.wait_for(child(), 5))
                    except BaseException as exc:
                        report["error"] = repr(exc)

                thread = threading.Thread(target=child_thread)
                thread.start()
                thread.join(6)
                os.write(write_fd, json.dumps(report).encode())
                os._exit(0)
            os.close(write_fd)
            loop = asyncio.get_running_loop()
            _, status = await loop.run_in_executor(None, os.waitpid, pid, 0)
            report = json.loads(os.read(read_fd, 65536))
            os.close(read_fd)
            assert os.waitstatus_to_exitcode(status) == 0
            assert report.get("error") is None, report
            assert report["inherited"]["idle"] == 0 and report["inherited"]["created"] == 0
            assert report["new_conn"] and report["answer"] == "from child"
            assert server.accepted == 2
            async with pool.acquire() as conn:  # the parent's connection is untouched
                assert conn is parent_conn
                assert await conn.ask("parent") == "parent"
            await pool.close()

    run(main())
