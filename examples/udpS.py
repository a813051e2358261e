"""Port of ``udpS.php``: a UDP server that answers every datagram with ``Server: <data>``.

Run: ``python3 examples/udpS.py [--host 127.0.0.1] [--port 9501] [--workers N]``, then
``nc -u 127.0.0.1 9501`` and type ``hello udp``: the reply is ``Server: hello udp``. For each
datagram the server also prints the ``client_info`` dict (PHP's ``var_dump($client_info)``):
``server_socket``, ``server_port``, ``address`` and ``port``.

UDP has no connections, so there are no ``connect``/``close`` events; the ``packet`` event gets
``(server, data, client_info)`` and replies with ``server.sendto(address, port, data)``. The
default ``worker_num`` is the CPU count, as in the original (which set none).
"""

import argparse

from pyswoole import SOCK_UDP, Server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--workers", type=int, default=None, help="worker_num (default: CPU count)")
    args = parser.parse_args()

    server = Server(args.host, args.port, sock_type=SOCK_UDP)
    if args.workers:
        server.set({"worker_num": args.workers})

    @server.on("packet")
    def on_packet(server, data, client_info):
        server.sendto(client_info["address"], client_info["port"], b"Server: " + data)
        print(client_info, flush=True)

    server.start()


if __name__ == "__main__":
    main()
