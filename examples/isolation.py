"""Port of ``isolation.php``: every worker process has its own copy of a global variable.

Run: ``python3 examples/isolation.py [--host 0.0.0.0] [--port 9501] [--workers 2]``, then open
several ``nc 127.0.0.1 9501`` sessions and type lines: each message is answered with the value of
a counter after ``+= 1``.

The counter is a module-level global, and each of the 2 workers has its own copy after the fork,
so the count is per worker, not per server. With ``dispatch_mode`` 2 (the default) connection
``fd`` always goes to worker ``fd % worker_num``, fds counting from 1 in accept order. On a fresh
server:

- connection 1 (worker 1) sends 3 messages and gets ``1``, ``2``, ``3``;
- connection 2 (worker 0) gets ``1``;
- connection 3 (worker 1) gets ``4``;
- connection 4 (worker 0) gets ``2``.

``examples/isolation_atomic.py`` keeps one counter for all workers in shared memory
(``pyswoole.shm.Atomic``).
"""

import argparse

from pyswoole import Server

counter = 0  # one copy per worker process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    server = Server(args.host, args.port)
    server.set({"worker_num": args.workers})

    @server.on("receive")
    def on_receive(server, fd, reactor_id, data):
        global counter
        counter += 1
        server.send(fd, f"{counter}\n")

    server.start()


if __name__ == "__main__":
    main()
