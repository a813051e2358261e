"""Port of ``while.php``: what an endless loop does to a worker, and how the server still stops.

Run: ``python3 examples/while.py [--host 0.0.0.0] [--port 9501] [--max-wait-time 3]``, then
``nc 127.0.0.1 9501`` and type anything: the reply is ``hello`` (lowercase), after which the only
worker spins at 100% CPU in ``while True``. Later data, from this or any other connection, gets no
reply; new connections are still accepted, because the master process accepts them.

Runtime hooks are on as in the original (``Runtime::enableCoroutine(true)``), which does not help:
a loop that never calls anything that could yield never gives the event loop back.

Stopping it: ``kill -TERM <master>`` asks every worker to stop; the stuck worker cannot run its
shutdown code, so after ``max_wait_time`` seconds (``--max-wait-time``, Swoole's setting, default
3) the manager kills it with SIGKILL and the server exits, leaving no process behind. The original
needed a manual ``kill -9``; here the escalation is the documented behaviour.
"""

import argparse

from pyswoole import Server
from pyswoole.runtime import enable_coroutine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument(
        "--max-wait-time", type=float, default=3.0, help="seconds before a stuck worker is killed"
    )
    args = parser.parse_args()

    enable_coroutine()
    server = Server(args.host, args.port)
    server.set({"worker_num": 1, "max_wait_time": args.max_wait_time})

    @server.on("receive")
    def on_receive(server, fd, reactor_id, data):
        server.send(fd, b"hello\n")
        i = 0
        while True:  # the demo's point: this never returns
            i += 1

    server.start()


if __name__ == "__main__":
    main()
