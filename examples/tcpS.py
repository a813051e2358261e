"""Port of ``tcpS.php``: a TCP server that answers every chunk with ``Server: <data>``.

Run: ``python3 examples/tcpS.py [--host 0.0.0.0] [--port 9501] [--workers 4]``, then
``nc 127.0.0.1 9501`` and type ``hello``: the reply is ``Server: hello``. Like the original there is
no framing: each chunk TCP delivers gets one reply. The server prints ``Client-<fd>: Connect.``,
``接收到数据: <data>`` and ``Client-<fd>: Close.``.
"""

import argparse

from pyswoole import SOCK_TCP, Server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    server = Server(args.host, args.port, sock_type=SOCK_TCP)
    server.set({"worker_num": args.workers})

    @server.on("connect")
    def on_connect(server, fd, reactor_id):
        print(f"Client-{fd}: Connect.", flush=True)

    @server.on("receive")
    def on_receive(server, fd, reactor_id, data):
        print(f"接收到数据: {data.decode(errors='replace')}", flush=True)
        server.send(fd, b"Server: " + data)

    @server.on("close")
    def on_close(server, fd, reactor_id):
        print(f"Client-{fd}: Close.", flush=True)

    server.start()


if __name__ == "__main__":
    main()
