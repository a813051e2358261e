"""Port of ``sleep.php``: what a blocking ``sleep()`` does to a worker.

Run: ``python3 examples/sleep.py [--host 0.0.0.0] [--port 9501] [--sleep 5]``, then
``nc 127.0.0.1 9501`` and type ``hi``: the reply ``Hello`` comes at once and ``Swoole:hi`` (no
space after the colon; the data is the raw chunk, newline included) 5 seconds later.

There is one worker, and ``time.sleep(5)`` blocks it: while it sleeps, a second client can connect
(the master accepts connections) but gets its ``Hello`` only after the first handler has finished.

``--enable-coroutine`` turns on the line the original left commented out
(``Runtime::enableCoroutine(true)``, here ``pyswoole.runtime.enable_coroutine()``): ``time.sleep``
then suspends only the calling callback, and the second client gets ``Hello`` at once. Writing
``await asyncio.sleep(5)`` in an ``async def`` callback has the same effect without hooks (the
original's commented-out ``co::sleep(5)``).
"""

import argparse
import time

from pyswoole import Server
from pyswoole.runtime import enable_coroutine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--sleep", type=float, default=5.0, help="seconds each chunk sleeps")
    parser.add_argument("--enable-coroutine", action="store_true", help="hook time.sleep (it stops blocking)")
    args = parser.parse_args()

    if args.enable_coroutine:
        enable_coroutine()
    server = Server(args.host, args.port)
    server.set({"worker_num": 1})

    @server.on("receive")
    def on_receive(server, fd, reactor_id, data):
        server.send(fd, b"Hello\n")
        time.sleep(args.sleep)  # blocking, unless hooks are enabled
        server.send(fd, b"Swoole:" + data + b"\n")

    server.start()


if __name__ == "__main__":
    main()
