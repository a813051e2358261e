"""The shared-memory examples, run for real."""

import re
import socket
import subprocess
import sys

from helpers import EXAMPLES, free_port, port_open, recv_until

TABLE_OUTPUT = """\
Array
(
    [id] => 1
    [name] => Ja
    [age] => 18
)
Array
(
    [id] => 3
    [name] => To
    [age] => 19
)
"""


def run_example(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "table.py"), *args], capture_output=True, text=True, timeout=30
    )


def test_table_example_truncates_like_the_original():
    result = run_example()
    assert result.returncode == 0, result.stderr
    assert result.stdout == TABLE_OUTPUT


def test_table_example_strict_column_refuses_long_values():
    result = run_example("--strict")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "column 'name' is 4 bytes; the column holds 2" in result.stderr


def test_isolation_atomic_counts_once_across_workers(run_server):
    port = free_port()
    server = run_server(
        [EXAMPLES / "isolation_atomic.py", "--host", "127.0.0.1", "--port", port],
        ready=lambda: port_open(port),
    )
    replies, opened = [], []
    try:
        for _ in range(40):  # the kernel picks the accepting worker: connect until two have served
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            opened.append(sock)
            for conn in opened:
                conn.sendall(b"hi")
                replies.append(recv_until(conn, lambda data: data.endswith(b"\n")))
            workers = set(re.findall(r"^worker (\d+) fd", server.output(), re.MULTILINE))
            if len(workers) == 2:
                break
    finally:
        for sock in opened:
            sock.close()
    assert len(workers) == 2
    assert replies == [f"{n}\n".encode() for n in range(1, len(replies) + 1)]
