"""Port of ``echo_client.php``: connect, read one line (at most 100 bytes), print it, close.

Like PHP's ``socket_read(..., PHP_NORMAL_READ)`` the read stops after ``\\n`` or ``\\r``. The original set
``SO_REUSEPORT`` on the client socket, which does nothing useful for a client; it is left out.
"""

from __future__ import annotations

import argparse
import socket


def read_line(connection: socket.socket, limit: int = 100) -> bytes:
    line = b""
    while len(line) < limit:
        byte = connection.recv(1)
        if not byte:
            break
        line += byte
        if byte in b"\r\n":
            break
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9501)
    args = parser.parse_args()

    with socket.create_connection((args.host, args.port), timeout=10) as connection:
        print(read_line(connection).decode(), end="")


if __name__ == "__main__":
    main()
