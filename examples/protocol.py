"""Port of ``protocol.php``: Swoole's two framing protocols, each on its own port.

The original file holds comments only (the two settings blocks below); this port runs both.

Run: ``python3 examples/protocol.py [--host 0.0.0.0] [--port 9501] [--eof-port 9502]``.

- **Length protocol** on ``--port`` (9501): a packet is a 2-byte big-endian length (pack code
  ``n``) followed by that many bytes of body (``package_body_offset`` 2: the length counts the body
  only). The server replies with a packet in the same format whose body is ``Server: <body>``, and
  prints ``length packet from <fd>: <body>``. A reply cannot be longer than a 16-bit length allows
  either, so a body over 65527 bytes is echoed cut to its first 65527 bytes.
- **EOF protocol** on ``--eof-port`` (9502, added with ``server.listen()``): a packet is a line
  ending in CR LF (``open_eof_split``, ``package_eof`` ``\\r\\n``). The server replies
  ``Server: <line>\\r\\n`` and prints ``eof packet from <fd>: <line>``.

Whatever TCP does to the bytes (one packet split over many segments, many packets in one segment),
``receive`` gets exactly one whole packet per call: header included on the length port,
terminator included on the EOF port. A packet larger than ``package_max_length`` (81920 bytes)
closes that connection only, with a log line; every other connection keeps working.

Try the EOF port with ``printf 'hello\\r\\nworld\\r\\n' | nc 127.0.0.1 9502``, and the length port
with ``printf '\\x00\\x05hello' | nc 127.0.0.1 9501``.

Fixes and notes:

- The original wrote ``'package_eof' => '\\r\\n'`` in single quotes, which in PHP is the 4
  characters backslash, r, backslash, n. The intended terminator is CR LF, used here.
- With a 16-bit length (``n``) the largest packet is 2 + 65535 bytes, so the length port's limit of
  81920 can never be reached; it matters on the EOF port, where a line without terminator that
  grows over 81920 bytes closes the connection.
"""

import argparse
import struct

from pyswoole import SOCK_TCP, Server

LENGTH_PROTOCOL = {
    "open_length_check": True,
    "package_max_length": 81920,
    "package_length_type": "n",  # same as pack(): unsigned 16-bit big-endian
    "package_length_offset": 0,
    "package_body_offset": 2,
}

EOF_PROTOCOL = {
    "open_eof_split": True,
    "package_eof": "\r\n",
    "package_max_length": 81920,
}

HEADER = struct.Struct(">H")
REPLY_PREFIX = b"Server: "
MAX_ECHO = 0xFFFF - len(REPLY_PREFIX)  # the reply's body must fit the 16-bit length too


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9501, help="length-prefixed protocol")
    parser.add_argument("--eof-port", type=int, default=None, help="CR LF protocol (default: --port + 1)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    server = Server(args.host, args.port)
    server.set({"worker_num": args.workers, **LENGTH_PROTOCOL})
    eof_port = server.listen(args.host, args.eof_port or args.port + 1, SOCK_TCP)
    eof_port.set(EOF_PROTOCOL)

    @server.on("receive")
    def on_length_packet(server, fd, reactor_id, packet):
        body = packet[HEADER.size :]
        print(f"length packet from {fd}: {body.decode(errors='replace')}", flush=True)
        reply = REPLY_PREFIX + body[:MAX_ECHO]
        server.send(fd, HEADER.pack(len(reply)) + reply)

    @eof_port.on("receive")
    def on_eof_packet(server, fd, reactor_id, packet):
        line = packet[: -len(b"\r\n")]
        print(f"eof packet from {fd}: {line.decode(errors='replace')}", flush=True)
        server.send(fd, REPLY_PREFIX + packet)

    server.start()


if __name__ == "__main__":
    main()
