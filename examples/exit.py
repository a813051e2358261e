"""Port of ``exit.php``: an exception inside a callback, caught, with hooked ``sleep``.

Run: ``python3 examples/exit.py [--host 0.0.0.0] [--port 9501] [--sleep 5]``, then
``nc 127.0.0.1 9501`` and type anything: the reply ``Hello`` comes at once; 5 seconds later the
handler raises ``Exception("aaa")``, catches it and prints ``aaa ! `` (trailing space) on the
server's output. The ``Swoole: ...`` reply after the raise is never reached, so the client only
ever gets ``Hello``; the connection stays open and the worker keeps serving.

Runtime hooks are on (``pyswoole.runtime.enable_coroutine()``, Swoole's
``Runtime::enableCoroutine(true)``), so ``time.sleep`` suspends only the calling callback: a second
client gets its ``Hello`` at once, even while the first handler sleeps, although there is only one
worker.

Differences from the original: each ``aaa ! `` ends with a newline (PHP's ``echo`` wrote them all
on one line). An exception that is *not* caught is logged with its traceback and the worker keeps
serving the other connections.
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
    args = parser.parse_args()

    enable_coroutine()
    server = Server(args.host, args.port)
    server.set({"worker_num": 1})

    @server.on("receive")
    def on_receive(server, fd, reactor_id, data):
        try:
            server.send(fd, b"Hello\n")
            time.sleep(args.sleep)  # hooked: suspends this callback only
            raise Exception("aaa")
            server.send(fd, b"Swoole: " + data + b"\n")  # never reached, as in the original
        except Exception as error:
            print(f"{error} ! ", flush=True)

    server.start()


if __name__ == "__main__":
    main()
