"""Port of ``multiprocess_share_data.php``: a global list is not shared between workers.

Run: ``python3 examples/multiprocess_share_data.py [--host 0.0.0.0] [--port 9501] [--shared]``,
then open ``nc 127.0.0.1 9501`` sessions one after the other. Each connection prints
``connection open: <fd>`` and then the list of open connections the worker knows about. Nothing is
ever sent to the clients.

Without ``--shared`` (the original) the list is a module-level global: each of the 2 workers has
its own, and with ``dispatch_mode`` 2 connection ``fd`` lands on worker ``fd % 2``, so with four
connections open at once the lists printed are ``[1]``, ``[2]``, ``[1, 3]``, ``[2, 4]``.

With ``--shared`` the open connections are kept in a ``pyswoole.shm.Table`` created before
``server.start()``, in shared memory that every worker sees, so the lists are ``[1]``,
``[1, 2]``, ``[1, 2, 3]``, ``[1, 2, 3, 4]``: the fix the original's notes recommend
(Swoole\\Table), instead of external storage or a single worker.

Fixes: the original never removed a closed connection, so its list grew for ever; here ``close``
removes the fd in both variants (``[1]``, ``[2]``, ``[1, 3]``, ... hold only connections that are
still open). PHP's ``var_dump`` is printed as a Python list.
"""

import argparse

from pyswoole import Server
from pyswoole.shm import Table

fds: list[int] = []  # one copy per worker process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--shared", action="store_true", help="keep the fds in a shm Table seen by all workers"
    )
    parser.add_argument("--max-connections", type=int, default=4096, help="rows of the shared Table")
    args = parser.parse_args()

    server = Server(args.host, args.port)
    server.set({"worker_num": args.workers})

    if args.shared:
        table = Table(args.max_connections)  # before start(): shared by every worker
        table.column("fd", Table.TYPE_INT)
        table.create()

        def remember(fd: int) -> list[int]:
            table.set(str(fd), {"fd": fd})
            return sorted(row["fd"] for _, row in table)

        def forget(fd: int) -> None:
            table.delete(str(fd))

    else:

        def remember(fd: int) -> list[int]:
            fds.append(fd)
            return fds

        def forget(fd: int) -> None:
            if fd in fds:
                fds.remove(fd)

    @server.on("connect")
    def on_connect(server, fd, reactor_id):
        print(f"connection open: {fd}", flush=True)
        print(remember(fd), flush=True)

    @server.on("receive")
    def on_receive(server, fd, reactor_id, data):
        pass  # as in the original: nothing is sent back

    @server.on("close")
    def on_close(server, fd, reactor_id):
        forget(fd)

    server.start()


if __name__ == "__main__":
    main()
