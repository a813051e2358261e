"""examples/kv_server.py and examples/redis.py, driven by redis-cli, redis-py and raw sockets.

The key-value server's replies are compared byte for byte with a real redis-server's.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import threading
import time
from typing import Any

import hiredis
import pytest
from helpers import EXAMPLES, ServerProcess, free_port, port_open
from redis import ConnectionPool, Redis

pytest_plugins = ["tests.db_servers"]


@pytest.fixture(scope="module")
def kv(tmp_path_factory):
    port = free_port()
    argv = [
        EXAMPLES / "kv_server.py",
        "--host",
        "127.0.0.1",
        "--port",
        port,
        "--workers",
        "2",
        "--rows",
        "20000",
    ]
    process = ServerProcess([str(a) for a in argv], tmp_path_factory.mktemp("kv"))
    process.start(ready=lambda: port_open(port))
    process.port = port
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def kv_client(kv):
    client = Redis(port=kv.port, socket_timeout=5)
    client.flushdb()
    try:
        yield client
    finally:
        client.close()


def raw_replies(port: int, commands: list[list[str]]) -> list[bytes]:
    """Each command's raw reply bytes, one connection, commands sent one by one."""
    import socket

    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for args in commands:
            parts = [a.encode() for a in args]
            sock.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
            reader, data = hiredis.Reader(), b""
            while True:
                chunk = sock.recv(65536)
                assert chunk, f"connection closed after {args}"
                data += chunk
                reader.feed(chunk)
                if reader.gets() is not False:
                    break
            replies.append(data)
    return replies


SCRIPT = """
FLUSHDB
HELLO 4
HELLO x
HELLO 2 foo
HELLO 2 SETNAME
PING
PING hello
PING a b
ECHO
ECHO hi
GET
GET missing
SET
SET k
SET k v
GET k
SET k v2 NX
SET k v3 XX
GET k
SET n1 v NX
SET n2 v XX
SET k v NX XX
SET k v EX 10 PX 100
SET k v EX
SET k v EX abc
SET k v EX 0
SET k v PX -5
SET k v EX 9223372036854775807
SET k v FOO
SET k v ex 100
TTL k
SET k v
TTL k
TTL missing
INCR c
INCR c
INCRBY c 10
INCRBY c x
INCRBY c
DECR c
DECR
SET big 9223372036854775807
INCR big
SET neg -9223372036854775808
DECR neg
SET s hello
INCR s
SET z 007
INCR z
SET p +5
INCR p
MSET a 1 b 2
MSET a 1 b
MSET
MGET a b missing
MGET
DEL a missing
DEL
EXISTS a b b missing
EXISTS
HSET h f1 v1 f2 v2
HSET h f1 x f3 v3
HSET h f1
HSET h
HGET h f1
HGET h nope
HGET nohash f
HGET h
HGETALL h
HGETALL nohash
HGETALL
GET h
INCR h
HSET s f v
HGET s f
HGETALL s
MGET h s
SET h now-a-string
GET h
EXPIRE
EXPIRE k
EXPIRE k abc
EXPIRE missing 10
EXPIRE k 100
TTL k
EXPIRE k 200 NX
EXPIRE k 200 XX
EXPIRE k 50 GT
EXPIRE k 500 GT
EXPIRE k 600 LT
EXPIRE k 60 LT
TTL k
EXPIRE k 10 NX XX
EXPIRE k 10 GT LT
EXPIRE k 10 FOO
EXPIRE s 10 XX
EXPIRE s 10 LT
EXPIRE s 5 GT
EXPIRE s 20 GT
TTL s
EXPIRE k -1
GET k
EXPIRE k 9223372036854775807
SET i 10
GET i
SET i 010
GET i
INCR i
SET i -0
INCR i
SET i 12345678901234567890
INCR i
MSET i 42 j -7
MGET i j
DECR j
SET t 5 EX 100
INCR t
TTL t
GET t
SET t x PX 100000 NX
SET t 8 PX 100000 XX
INCRBY t -10
TTL t
HSET ht f v
EXPIRE ht 100
HSET ht g w
TTL ht
DEL t ht i j t
KEYS
DBSIZE x
DBSIZE
FLUSHDB FOO
FLUSHDB ASYNC
DBSIZE
QUIT
"""


def test_replies_and_error_texts_match_redis_server_byte_for_byte(kv, redis_server):
    commands = [line.split() for line in SCRIPT.strip().splitlines()]
    ours = raw_replies(kv.port, commands)
    theirs = raw_replies(redis_server.port, commands)
    for args, mine, reference in zip(commands, ours, theirs, strict=True):
        assert mine == reference, f"{' '.join(args)}: {mine!r} != redis-server {reference!r}"


def test_keys_patterns_match_redis_server(kv, redis_server):
    keys = ["hello", "hallo", "hxllo", "hllo", "heeeello", "h*llo", "a[b", "x1", "x2", "x10"]
    patterns = [
        "*",
        "h?llo",
        "h*llo",
        "h[ae]llo",
        "h[^e]llo",
        "h[a-b]llo",
        "h\\*llo",
        "x?",
        "a[b",
        "nothing*",
    ]
    results = []
    for port in (kv.port, redis_server.port):
        client = Redis(port=port, socket_timeout=5)
        try:
            client.flushdb()
            client.mset({key: "1" for key in keys})
            results.append([sorted(client.keys(pattern)) for pattern in patterns])
            client.flushdb()
        finally:
            client.close()
    assert results[0] == results[1]


def test_expiry_really_expires(kv_client):
    kv_client.set("soon", "v", px=100)
    kv_client.set("later", "v", ex=100)
    assert kv_client.get("soon") == b"v"
    time.sleep(0.25)
    assert kv_client.get("soon") is None
    assert kv_client.exists("soon") == 0
    assert kv_client.dbsize() == 1


def test_store_limits_are_clear_errors(kv_client):
    from redis.exceptions import ResponseError

    with pytest.raises(ResponseError, match="key is longer than 63 bytes"):
        kv_client.set("k" * 64, "v")
    with pytest.raises(ResponseError, match="value is longer than 1024 bytes"):
        kv_client.set("k", "v" * 1025)
    kv_client.set("k", "v" * 1024)
    assert kv_client.get("k" * 64) is None
    with pytest.raises(ResponseError, match="value is longer than 1024 bytes"):
        kv_client.mset({"first": "1", "second": "v" * 1025})
    assert kv_client.get("first") is None, "a refused MSET writes none of its keys"


def test_pool_over_several_workers_sees_one_store(kv, kv_client):
    pool = ConnectionPool(port=kv.port, max_connections=16, socket_timeout=5)
    clients = [Redis(connection_pool=pool) for _ in range(16)]
    connections = [pool.get_connection() for _ in range(16)]
    try:
        pids = set()
        for i, conn in enumerate(connections):
            conn.send_command("SET", f"key:{i}", f"value:{i}")
            assert conn.read_response() == b"OK"
            conn.send_command("INFO", "server")
            info = conn.read_response().decode()
            pids.add(next(line for line in info.splitlines() if line.startswith("process_id:")))
        assert len(pids) == 2, "the 16 connections should be spread over both workers"
        for conn in connections:
            conn.send_command("MGET", *[f"key:{i}" for i in range(16)])
            assert conn.read_response() == [f"value:{i}".encode() for i in range(16)]
        for conn in connections:
            pool.release(conn)
        pipe = clients[0].pipeline(transaction=False)
        for _ in range(500):
            pipe.incr("counter")
        assert pipe.execute() == list(range(1, 501))
        assert clients[5].get("counter") == b"500"
    finally:
        pool.disconnect()


def test_concurrent_writers_on_both_workers_lose_no_update(kv, kv_client):
    """INCR (one atomic Table step), INCR of a key with an expiry and HSET (compare-and-set
    loops) from 8 connections spread over the 2 workers: every update counts."""
    kv_client.set("ttl-counter", 0, ex=1000)
    rounds, connections = 300, 8

    def work(n: int) -> None:
        client = Redis(port=kv.port, socket_timeout=10)
        try:
            for i in range(rounds):
                pipe = client.pipeline(transaction=False)
                pipe.incr("plain-counter").incr("ttl-counter").hset("fields", str(n), i)
                pipe.execute()
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert kv_client.get("plain-counter") == kv_client.get("ttl-counter") == b"%d" % (rounds * connections)
    assert 900 < kv_client.ttl("ttl-counter") <= 1000
    assert kv_client.hgetall("fields") == {b"%d" % n: b"%d" % (rounds - 1) for n in range(connections)}


def test_redis_cli_pipe_mass_insertion(kv, kv_client, tmp_path):
    count = 5000
    path = tmp_path / "mass.resp"
    with open(path, "wb") as out:
        for i in range(count):
            key, value = b"mass:%d" % i, b"value %d" % i
            out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value))
    with open(path, "rb") as source:
        result = subprocess.run(
            ["redis-cli", "-p", str(kv.port), "--pipe"],
            stdin=source,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"errors: 0, replies: {count}" in result.stdout
    assert kv_client.dbsize() == count
    assert kv_client.get("mass:4321") == b"value 4321"


def interactive_redis_cli(port: int, lines: list[str]) -> list[str]:
    """Type ``lines`` into an interactive redis-cli (on a pty); what it printed for each."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        ["redis-cli", "-p", str(port)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "TERM": "dumb"},
    )
    os.close(slave)
    prompt = f"127.0.0.1:{port}> ".encode()

    def read_prompt() -> bytes:
        data, deadline = b"", time.monotonic() + 5
        while not data.endswith(prompt):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no prompt after {data!r}")
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                data += os.read(master, 65536)
        return data[: -len(prompt)]

    outputs = []
    try:
        read_prompt()
        for line in lines:
            os.write(master, line.encode() + b"\n")
            _echo, _, printed = read_prompt().partition(b"\r\n")
            outputs.append(printed.decode().replace("\r\n", "\n").rstrip("\n"))
    finally:
        process.kill()
        process.wait(5)
        os.close(master)
    return outputs


def test_redis_cli_interactive_replies(kv, kv_client):
    outputs = interactive_redis_cli(
        kv.port,
        [
            "set k v",
            "get k",
            "get nope",
            "incr n",
            "hset h f v",
            "hgetall h",
            "incr k",
            "ping",
            "mget k nope",
        ],
    )
    assert outputs == [
        "OK",
        '"v"',
        "(nil)",
        "(integer) 1",
        "(integer) 1",
        '1) "f"\n2) "v"',
        "(error) ERR value is not an integer or out of range",
        "PONG",
        '1) "v"\n2) (nil)',
    ]


def test_redis_example_swset_swget(run_server):
    port = free_port()
    run_server(
        [EXAMPLES / "redis.py", "--host", "127.0.0.1", "--port", port, "--workers", "1"],
        ready=lambda: port_open(port),
    )
    outputs = interactive_redis_cli(
        port, ["swset name swoole", "SwGet name", "swget missing", "swset name", "get name"]
    )
    assert outputs == [
        '"OK"',
        '"swoole"',
        "(nil)",
        "(error) ERR wrong number of arguments for 'swset' command",
        "(error) ERR unknown command 'get'",
    ]


def test_redis_example_store_is_per_worker(run_server):
    port = free_port()
    run_server(
        [EXAMPLES / "redis.py", "--host", "127.0.0.1", "--port", port, "--workers", "2"],
        ready=lambda: port_open(port),
    )
    first = Redis(port=port, socket_timeout=5)
    others: list[Any] = [Redis(port=port, socket_timeout=5, single_connection_client=True) for _ in range(3)]
    try:
        assert first.execute_command("SWSET", "k", "v") == b"OK"
        seen = [client.execute_command("SWGET", "k") for client in others]
    finally:
        first.close()
        for client in others:
            client.close()
    assert b"v" in seen and None in seen, f"fd % worker_num dispatch should split the store: {seen}"
