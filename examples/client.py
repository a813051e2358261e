"""Port of ``client.php``: "sync blocking vs async non-blocking" clients.

Run: ``python3 examples/client.py [--host 0.0.0.0] [--port 9501] [--timeout 0.5]`` against
``examples/tcpS.py``: connects (``0.0.0.0`` reaches this machine on Linux, as in the original),
sends ``hello`` (no newline), prints the reply and a newline (``Server: hello``) and closes. On
failure it prints ``Connect failed, error code <errno>`` (e.g. 111, ECONNREFUSED) and exits with
status 1.

The original is mostly notes on the client API; its Python names: ``Client(SOCK_TCP)`` blocking,
``co.Client`` in coroutines, the ``socket.MSG_*`` flags for ``recv``, ``errCode``/``errMsg``,
``sock`` (the socket) and ``reuse`` (a ``keep=True`` client found its connection open).
"""

import argparse
import sys

from pyswoole import SOCK_TCP
from pyswoole.client import Client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--timeout", type=float, default=0.5)
    args = parser.parse_args()

    client = Client(SOCK_TCP)
    if not client.connect(args.host, args.port, args.timeout):
        sys.exit(f"Connect failed, error code {client.errCode}")
    client.send("hello")
    print(client.recv().decode(errors="replace"))
    client.close()


if __name__ == "__main__":
    main()
