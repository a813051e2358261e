"""Port of ``redis.php``: a Redis-protocol server with two commands, ``SWSET`` and ``SWGET``.

Run: ``python3 examples/redis.py [--host 0.0.0.0] [--port 9501] [--workers N]``, then
``redis-cli -p 9501``::

    127.0.0.1:9501> swset name swoole
    "OK"
    127.0.0.1:9501> swget name
    "swoole"
    127.0.0.1:9501> swget missing
    (nil)
    127.0.0.1:9501> get name
    (error) ERR unknown command 'get'

As in the original, ``SWSET`` answers with the *bulk string* ``OK`` (``Server.format(STRING, "OK")``,
so redis-cli shows it in quotes), command names match in any case, and the store is a dict of each
worker process: a value is seen only by connections served by the same worker (with
``dispatch_mode`` 2, connection ``fd`` goes to worker ``fd % worker_num``). ``--workers`` defaults
to the number of CPUs, as Swoole's ``worker_num`` does.

Fixed bugs of the original:

- ``SWGET`` of a missing key (or of an empty value) sent nothing at all, so the client hung until
  its timeout: ``format(STRING, null)`` failed (Swoole refuses strings shorter than 1 byte) and
  ``send($fd, false)`` sent nothing. Here ``format(STRING, None)`` is nil (``$-1``), shown as
  ``(nil)``, and an empty value is the empty bulk string ``$0``.
- ``SWSET`` without a value stored ``null`` with a PHP notice; here wrong arity gets Redis's error
  ``ERR wrong number of arguments for 'swset' command``.
"""

import argparse
import os

from pyswoole.redis import STRING, ReplyError, Server

strings: dict[bytes, bytes] = {}  # one copy per worker process, like the original's $serv->strings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    server = Server(args.host, args.port)
    server.set({"worker_num": args.workers})

    @server.handler("SWSET")
    def swset(server, fd, args):
        if len(args) != 2:
            raise ReplyError("ERR wrong number of arguments for 'swset' command")
        strings[args[0]] = args[1]
        return server.send(fd, Server.format(STRING, "OK"))

    @server.handler("SWGET")
    def swget(server, fd, args):
        if len(args) != 1:
            raise ReplyError("ERR wrong number of arguments for 'swget' command")
        return server.send(fd, Server.format(STRING, strings.get(args[0])))

    server.start()


if __name__ == "__main__":
    main()
