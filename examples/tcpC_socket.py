"""Port of ``tcpC_socket.php`` (README: ``tcp_socket.php``): a raw socket client.

Run: ``python3 examples/tcpC_socket.py [--host 127.0.0.1] [--port 9501] [--idle 2]`` against
``examples/tcpS.py``. Resolves the host, connects, sends ``hello\\n`` and prints everything the
server sends: ``Server: hello``. Fixes: the host is configurable (the original hard-codes the
author's ``www.mi360.cn``), and the original then blocks forever because tcpS never closes the
connection; this port stops when the server closes it or after ``--idle`` seconds without data.
If the connection fails it prints ``socket_connect() failed.`` and exits with status 1.
"""

import argparse
import socket
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--idle", type=float, default=2.0, help="stop after this many seconds without data")
    args = parser.parse_args()

    address = socket.gethostbyname(args.host)
    try:
        sock = socket.create_connection((address, args.port), timeout=args.idle)
    except OSError:
        sys.exit("socket_connect() failed.")
    with sock:
        sock.sendall(b"hello\n")
        while True:
            try:
                data = sock.recv(2048)
            except TimeoutError:
                break
            if not data:
                break
            sys.stdout.write(data.decode(errors="replace"))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
