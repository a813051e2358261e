"""Port of ``udpC.php``: a UDP client.

Run: ``python3 examples/udpC.py [--host 127.0.0.1] [--port 9501]`` against ``examples/udpS.py``:
sends the datagram ``hello udp\\n`` with ``sendto`` (no connect) and prints the reply,
``Server: hello udp``. Failures print ``send failed.`` or ``recv failed.`` and exit with status 1.
The reply wait is bounded (0.5 s) so a missing server does not hang the client.
"""

import argparse
import sys

from pyswoole import SOCK_UDP
from pyswoole.client import Client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9501)
    args = parser.parse_args()

    client = Client(SOCK_UDP)
    if not client.sendto(args.host, args.port, "hello udp\n"):
        sys.exit("send failed.")
    data = client.recv()
    if not data:
        sys.exit("recv failed.")
    sys.stdout.write(data.decode(errors="replace"))
    client.close()


if __name__ == "__main__":
    main()
