"""Port of ``stream_echo_server.php``: a blocking TCP server that reads before it answers.

Listens on ``127.0.0.1:9501``. For each client it reads up to 1024 bytes, prints them the way PHP's
``var_dump`` does (``string(5) "Hello"``), answers ``Welcome - <random>\\n`` and closes. ``accept`` gives
up after 60 s (PHP's ``default_socket_timeout``) and simply waits again.

Fix: the original's read blocked until the client sent something, so one silent client stopped the
server for everybody. Reads now time out (``--read-timeout``, default 10 s); such a client is logged to
stderr and closed without an answer.
"""

from __future__ import annotations

import argparse
import random
import socket
import sys


def var_dump(data: bytes) -> str:
    return f'string({len(data)}) "{data.decode(errors="replace")}"'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--read-timeout", type=float, default=10.0)
    args = parser.parse_args()

    with socket.create_server((args.host, args.port)) as server:
        server.settimeout(60)
        while True:
            try:
                connection, address = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(args.read_timeout)
                try:
                    content = connection.recv(1024)
                except TimeoutError:
                    print(f"{address[0]}:{address[1]} sent nothing in {args.read_timeout} s", file=sys.stderr)
                    continue
                print(var_dump(content), flush=True)
                connection.sendall(f"Welcome - {random.randint(0, 2147483647)}\n".encode())


if __name__ == "__main__":
    main()
