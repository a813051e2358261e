"""Port of ``echo_server.php``: a blocking TCP server with the ``socket`` module.

Listens on ``127.0.0.1:9501`` (backlog 2); every client at once receives ``Welcome - <random>\\n``
(``random`` in 0..2147483647, like PHP's ``rand()``) and is closed. It never reads from the client.

Fix: ``SO_REUSEADDR``, so that a restart does not fail while old connections sit in TIME_WAIT.
"""

from __future__ import annotations

import argparse
import random
import socket


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9501)
    args = parser.parse_args()

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((args.host, args.port))
        server.listen(2)
        while True:
            connection, _ = server.accept()
            with connection:
                connection.sendall(f"Welcome - {random.randint(0, 2147483647)}\n".encode())


if __name__ == "__main__":
    main()
