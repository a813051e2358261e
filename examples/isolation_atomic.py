"""The isolation demo (``isolation.php``) with its counter done right: one Atomic for all workers.

Run: ``python3 examples/isolation_atomic.py [--host 0.0.0.0] [--port 9501] [--workers 2]``, then
``nc 127.0.0.1 9501`` (several times) and type lines: every message is answered with the next value
of one counter, ``1``, ``2``, ``3``, ... whichever worker the connection landed on. Each worker
prints ``worker <id> fd <fd>: <value>``.

In ``isolation.php`` the counter was a PHP global: each worker process had its own copy, so two
connections served by different workers both counted ``1``, ``2``, ... on their own. Here the
counter is an ``Atomic`` created before ``server.start()``, in shared memory that every forked
worker sees; ``add(1)`` returns the new value atomically, so no two messages get the same number.
"""

import argparse

from pyswoole import Server
from pyswoole.shm import Atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    server = Server(args.host, args.port)
    server.set({"worker_num": args.workers})
    counter = Atomic()  # before start(): shared by every worker

    @server.on("receive")
    def on_receive(server, fd, reactor_id, data):
        value = counter.add(1)
        print(f"worker {server.worker_id} fd {fd}: {value}", flush=True)
        server.send(fd, f"{value}\n".encode())

    server.start()


if __name__ == "__main__":
    main()
