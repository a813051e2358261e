"""pyswoole.redis.Server for real: a server process, raw sockets, redis-py and redis-cli.

Run as a script, this module is the server under test: ``python3 tests/test_redis_server.py PORT
[SETTINGS_JSON]``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

HANDLER_ERROR = "redis handler boom"


def serve(port: int, settings: dict) -> None:
    from pyswoole.redis import Server

    if settings.pop("hooks", False):
        from pyswoole import runtime

        runtime.enable_coroutine()
    server = Server("127.0.0.1", port)
    server.set({"worker_num": 2, **settings})

    @server.handler("BLOCK")
    def block(server, fd, args):  # BLOCK milliseconds value: a blocking sleep (hooked when hooks are on)
        time.sleep(int(args[0]) / 1000)
        return args[1]

    @server.handler("SENDBLOCK")
    def send_block(server, fd, args):
        time.sleep(0.05)
        server.send(fd, Server.format(Server.STATUS, args[0]))

    @server.handler("ECHO")
    def echo(server, fd, args):
        return args[0]

    @server.handler("SLEEP")
    async def sleep(server, fd, args):  # SLEEP milliseconds value
        await asyncio.sleep(int(args[0]) / 1000)
        return args[1]

    @server.handler("SENDLATER")
    async def send_later(server, fd, args):
        await asyncio.sleep(0.05)
        server.send(fd, Server.format(Server.STATUS, args[0]))
        return "ignored: the command was answered with send()"

    @server.handler("PUSHLATER")
    def push_later(server, fd, args):  # an out-of-band message after the reply
        server.after(50, server.send, fd, Server.format(Server.STATUS, "pushed"))
        return 1

    @server.handler("BOOM")
    def boom(server, fd, args):
        raise RuntimeError("kaput")

    @server.handler("ASYNCBOOM")
    async def async_boom(server, fd, args):
        await asyncio.sleep(0.01)
        raise ValueError("kaput later")

    @server.handler("OBJECT")
    def unencodable(server, fd, args):
        return object()

    @server.handler("BIG")
    def big(server, fd, args):
        return b"x" * int(args[0])

    @server.handler("TYPES", decode=True)
    def types(server, fd, args):
        return {"args": args, "none": None, "int": 7, "list": [1, "a"], "float": 1.5, "bool": True}

    @server.handler("WHO")
    def who(server, fd, args):
        return os.getpid()

    @server.handler("RELOAD")
    def reload(server, fd, args):
        return server.reload()

    deferred: list[int] = []

    @server.handler("CID")
    def cid(server, fd, args):  # this command's coroutine, and how many defers have run so far
        from pyswoole import coroutine

        coroutine.defer(deferred.append, 1)
        return [coroutine.get_cid(), len(deferred)]

    @server.handler("BYE")
    def bye(server, fd, args):
        server.close(fd)
        return Server.format(Server.STATUS)

    server.start()


if __name__ == "__main__":
    serve(int(sys.argv[1]), json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
    sys.exit(0)


from helpers import free_port, port_open, process_group_alive  # noqa: E402
from redis import Redis  # noqa: E402

from pyswoole.protocol.resp import RequestParser  # noqa: E402


def start(run_server, **settings):
    port = free_port()
    server = run_server([__file__, port, json.dumps(settings)], ready=lambda: port_open(port))
    server.port = port
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from helpers import ServerProcess

    port = free_port()
    process = ServerProcess([__file__, str(port)], tmp_path_factory.mktemp("redis"))
    process.start(ready=lambda: port_open(port))
    process.port = port
    try:
        yield process
    finally:
        process.stop()


def command(*args: bytes | str) -> bytes:
    parts = [a.encode() if isinstance(a, str) else a for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def read_replies(sock: socket.socket, count: int, timeout: float = 5.0) -> list:
    """``count`` whole replies, decoded by hiredis (errors as ReplyError objects)."""
    import hiredis

    reader = hiredis.Reader()
    replies: list = []
    deadline = time.monotonic() + timeout
    while len(replies) < count:
        reply = reader.gets()
        if reply is not False:
            replies.append(reply)
            continue
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        data = sock.recv(1 << 20)
        if not data:
            raise EOFError(f"connection closed after {replies!r}")
        reader.feed(data)
    return replies


def _drain(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_async_handlers_finishing_out_of_order_are_answered_in_order(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(
            command("SLEEP", "300", "first")
            + command("SLEEP", "100", "second")
            + command("ECHO", "third")
            + command("SENDLATER", "fourth")
            + command("SLEEP", "0", "fifth")
            + command("ECHO", "sixth")
        )
        replies = read_replies(sock, 6)
        elapsed = time.monotonic() - started
    assert replies == [b"first", b"second", b"third", b"fourth", b"fifth", b"sixth"]
    assert elapsed < 0.39, "the handlers ran one after another instead of concurrently"


def test_synchronous_replies_of_one_read_leave_in_one_write(server):
    """100 pipelined commands answered by plain handlers arrive as one segment on loopback."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"".join(command("ECHO", str(i)) for i in range(100)))
        sock.settimeout(5)
        first = sock.recv(1 << 20)
        expected = b"".join(b"$%d\r\n%d\r\n" % (len(str(i)), i) for i in range(100))
        assert first == expected


def test_plain_handlers_of_one_read_share_a_coroutine_whose_defers_run_after_them(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(command("CID") + command("CID"))
        (first, ran_before), (second, ran_between) = read_replies(sock, 2)
        sock.sendall(command("CID"))
        (third, ran_after) = read_replies(sock, 1)[0]
    assert first > 0 and second == first and third != first
    assert ran_between == ran_before and ran_after == ran_before + 2


def test_inline_commands_and_unknown_command(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b'echo "a b"\r\nNoSuch x\r\n\r\nECHO c\n')
        assert read_replies(sock, 3)[0:1] == [b"a b"]
        sock.sendall(b"nosuch\r\n")
        reply = read_replies(sock, 1)[0]
        assert str(reply) == "ERR unknown command 'nosuch'"


def test_raising_handler_answers_err_and_the_connection_stays_usable(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            command("BOOM") + command("ASYNCBOOM") + command("OBJECT") + command("ECHO", "still here")
        )
        error, later, unencodable, echoed = read_replies(sock, 4)
        assert str(error) == "ERR kaput"
        assert str(later) == "ERR kaput later"
        assert str(unencodable) == "ERR cannot encode object as a RESP reply"
        assert echoed == b"still here"
    assert "kaput" in server.wait_output("RuntimeError: kaput")


def test_malformed_request_gets_an_error_then_close_and_others_are_untouched(server):
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as bad,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as good,
    ):
        bad.sendall(
            command("SLEEP", "50", "before") + b"*2\r\n$4\r\nECHO\r\n:12\r\n" + command("ECHO", "after")
        )
        data = _drain(bad, 5)
        assert data == b"$6\r\nbefore\r\n-ERR Protocol error: expected '$', got ':'\r\n"
        good.sendall(command("ECHO", "fine"))
        assert read_replies(good, 1) == [b"fine"]
    server.wait_output("Protocol error: expected '$'")


def test_quit_like_close_answers_then_closes(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(command("ECHO", "a") + command("BYE") + command("ECHO", "never"))
        assert _drain(sock, 5) == b"$1\r\na\r\n+OK\r\n"


def test_out_of_band_send_follows_the_reply(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(command("PUSHLATER"))
        assert read_replies(sock, 2) == [1, b"pushed"]


def test_redis_py_pipeline_pool_and_resp3(server):
    client = Redis(port=server.port, socket_timeout=5)
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(200):
            pipe.execute_command("SLEEP", str(i % 3), str(i)) if i % 10 == 0 else pipe.execute_command(
                "ECHO", str(i)
            )
        assert pipe.execute() == [str(i).encode() for i in range(200)]
        assert client.execute_command("BIG", "100000") == b"x" * 100000
    finally:
        client.close()
    resp3 = Redis(port=server.port, protocol=3, socket_timeout=5, decode_responses=True)
    try:
        assert resp3.execute_command("TYPES", "é") == {
            "args": ["é"],
            "none": None,
            "int": 7,
            "list": [1, "a"],
            "float": 1.5,
            "bool": True,
        }
    finally:
        resp3.close()


def test_redis_cli_resp3_and_no_raw_formatting(server):
    result = subprocess.run(
        ["redis-cli", "-3", "-p", str(server.port), "--no-raw", "TYPES", "x"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 0, result.stderr
    assert '1# "args" => 1) "x"' in result.stdout
    assert '2# "none" => (nil)' in result.stdout
    assert '5# "float" => (double) 1.5' in result.stdout
    assert '6# "bool" => (true)' in result.stdout


def server_rss_kib(server) -> int:
    total = 0
    for pid in process_group_alive(server.pid):
        with open(f"/proc/{pid}/status") as status:
            total += int(next(line.split()[1] for line in status if line.startswith("VmRSS:")))
    return total


def test_client_that_does_not_read_its_replies_is_paused_not_buffered(run_server):
    server = start(run_server, buffer_output_size=64 * 1024, worker_num=1)
    count, size = 4000, 4096  # 16 MiB of replies
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as other,
    ):
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        slow.sendall(command("BIG", str(size)))  # every process is up and has served once
        read_replies(slow, 1)
        rss_before = server_rss_kib(server)
        sender = threading.Thread(target=slow.sendall, args=(command("BIG", str(size)) * count,))
        sender.start()
        time.sleep(0.5)
        assert server_rss_kib(server) - rss_before < 8 * 1024, "the replies were buffered, not paused"
        other.sendall(command("ECHO", "served meanwhile"))
        assert read_replies(other, 1) == [b"served meanwhile"]
        replies = read_replies(slow, count, timeout=30)  # everything arrives once the client reads
        sender.join(10)
    assert len(replies) == count and all(r == b"x" * size for r in replies)


def test_request_over_package_max_length_is_refused(run_server):
    server = start(run_server, package_max_length=4096, worker_num=1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(command("ECHO", "ok") + b"*2\r\n$4\r\nECHO\r\n$1000000\r\n" + b"x" * 69_000)
        time.sleep(0.3)  # all read; the next bytes cross the limit (4096 + 64 KiB) and nothing stays unread
        sock.sendall(b"x" * 1000)
        data = _drain(sock, 5)
    assert data.startswith(
        b"$2\r\nok\r\n-ERR Protocol error: request bigger than package_max_length (4096 bytes)"
    )
    parser = RequestParser(4096)
    assert parser.feed(command("ECHO", "x" * 4096)) == [[b"ECHO", b"x" * 4096]]


def test_reload_hands_idle_connections_to_the_new_workers(run_server):
    server = start(run_server, worker_num=1)
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as idle,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as midway,
    ):
        idle.sendall(command("WHO"))
        (before,) = read_replies(idle, 1)
        midway.sendall(command("WHO"))
        read_replies(midway, 1)
        midway.sendall(b"*2\r\n$4\r\nECHO\r\n")  # a request under way during the reload
        idle.sendall(command("RELOAD"))
        assert read_replies(idle, 1) == [1]
        deadline = time.monotonic() + 10
        while True:
            idle.sendall(command("WHO"))
            (now,) = read_replies(idle, 1)
            if now != before:
                break
            assert time.monotonic() < deadline, "the worker was not replaced"
            time.sleep(0.05)
        assert _drain(midway, 5) == b""  # closed, not handed over half parsed
    server.wait_output("in the middle of a request")


def test_plain_handlers_with_runtime_hooks_suspend_and_keep_the_order(run_server):
    server = start(run_server, hooks=True, worker_num=1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(
            command("BLOCK", "300", "first")
            + command("SENDBLOCK", "second")
            + command("BLOCK", "200", "third")
            + command("ECHO", "fourth")
        )
        replies = read_replies(sock, 4)
        elapsed = time.monotonic() - started
    assert replies == [b"first", b"second", b"third", b"fourth"]
    assert elapsed < 0.39, "hooked sleeps should run concurrently"
