"""Port of ``stream_echo_client.php``: send ``Hello`` (no newline), print the answer, close."""

from __future__ import annotations

import argparse
import socket


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9501)
    args = parser.parse_args()

    with socket.create_connection((args.host, args.port), timeout=10) as connection:
        connection.sendall(b"Hello")
        print(connection.recv(1024).decode(), end="")


if __name__ == "__main__":
    main()
