"""Port of ``tcpC_sync.php`` (README: ``tcp_sync.php``): the blocking ``Client``.

Run: ``python3 examples/tcpC_sync.py [--host 127.0.0.1] [--port 9501]`` against
``examples/tcpS.py``: connects with a 0.5 s timeout, sends ``hello\\n``, prints the reply
(``Server: hello``) and closes. Failures print ``connect failed.``, ``send failed.`` or
``recv failed.`` and exit with status 1, as the original's ``die``.
"""

import argparse
import sys

from pyswoole import SOCK_TCP
from pyswoole.client import Client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9501)
    args = parser.parse_args()

    client = Client(SOCK_TCP)
    if not client.connect(args.host, args.port, 0.5):
        sys.exit("connect failed.")
    if client.send("hello\n") is False:
        sys.exit("send failed.")
    data = client.recv()
    if data is False:
        sys.exit("recv failed.")
    sys.stdout.write(data.decode(errors="replace"))
    client.close()


if __name__ == "__main__":
    main()
