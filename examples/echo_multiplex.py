"""Port of ``echo_multiplex.php``: one process serves many clients with I/O multiplexing.

Listens on ``127.0.0.1:9501`` (backlog 2) and waits in ``select`` (``selectors``: epoll on Linux). A new
connection prints ``New client connected``; whatever a client sends (up to 100 bytes per read) is
echoed to this program's stdout, never back to the client.

Fix: the original never removed a closed client from its list, so ``select`` reported it readable
forever and the loop spun at 100% CPU printing empty strings. A client that closes is now unregistered
and closed.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9501)
    args = parser.parse_args()

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(2)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    out = sys.stdout.buffer
    while True:
        for key, _ in selector.select():
            if key.fileobj is listener:
                client, _ = listener.accept()
                selector.register(client, selectors.EVENT_READ)
                print("New client connected", flush=True)
                continue
            client = key.fileobj
            try:
                data = client.recv(100)
            except ConnectionError:
                data = b""
            if data:
                out.write(data)
                out.flush()
            else:
                selector.unregister(client)
                client.close()


if __name__ == "__main__":
    main()
