"""Micro-benchmark of the WebSocket codec: cost per 64-byte message, and masking alternatives.

    python3 bench/bench_ws_codec.py [--size 64] [--number 200000]

Rows (nanoseconds per message, best of several repeats):
* the server's work per echoed message: parse one masked text frame (one ``feed`` per frame, as
  ``data_received`` delivers it), encode the unmasked reply; the same with 16 frames per chunk
  (pipelined); parsing a compressed frame and compressing a reply (permessage-deflate, context takeover);
* the client's side: encode a masked frame, parse an unmasked one;
* the same server round with the sans-IO protocols of ``websockets`` and ``wsproto``, for scale;
* unmasking ``size``, 1 KiB and 64 KiB payloads three ways: websockets' C routine (what the codec
  uses), the ``int.from_bytes`` XOR trick, and ``bytes.translate`` per byte lane (wsproto's way).
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.frames import apply_mask
from websockets.protocol import Protocol, Side
from wsproto import ConnectionType, WSConnection
from wsproto.events import TextMessage

from pyswoole.protocol.websocket import (
    FLAG_COMPRESS,
    FLAG_FIN,
    OPCODE_TEXT,
    DeflateParams,
    WebSocketCodec,
)


def best_ns(function: Callable[[], object], number: int, per_call: int = 1) -> float:
    """Best per-message time in nanoseconds over 7 repeats."""
    return min(timeit.repeat(function, number=number, repeat=7)) / number / per_call * 1e9


def codec_rows(size: int, number: int) -> list[tuple[str, float]]:
    text = "x" * size
    client = WebSocketCodec(client=True)
    server = WebSocketCodec()
    masked = client.encode(text)
    pipelined = masked * 16

    def echo_round() -> None:
        for frame in server.feed(masked):
            server.encode(frame.data)

    def pipelined_round() -> None:
        for frame in server.feed(pipelined):
            server.encode(frame.data)

    params = DeflateParams()
    compressing_server = WebSocketCodec(deflate=params)
    # A peer compressing without context gives identical frames, so one can be fed repeatedly.
    compressed = WebSocketCodec(client=True, deflate=params).encode(
        text, OPCODE_TEXT, FLAG_FIN | FLAG_COMPRESS
    )
    assert compressing_server.feed(compressed)[0].data == text

    unmasked = server.encode(text)
    rows = [
        ("server: parse masked frame", best_ns(lambda: server.feed(masked), number)),
        ("server: encode reply", best_ns(lambda: server.encode(text), number)),
        ("server: parse + encode (echo round)", best_ns(echo_round, number)),
        ("server: echo round, 16 frames per chunk", best_ns(pipelined_round, number // 16, 16)),
        ("client: encode masked frame", best_ns(lambda: client.encode(text), number)),
        ("client: parse unmasked frame", best_ns(lambda: client.feed(unmasked), number)),
        (
            "server: parse compressed frame",
            best_ns(lambda: compressing_server.feed(compressed), number // 10),
        ),
        (
            "server: encode compressed reply",
            best_ns(
                lambda: compressing_server.encode(text, OPCODE_TEXT, FLAG_FIN | FLAG_COMPRESS), number // 10
            ),
        ),
    ]
    return rows


def reference_rows(size: int, number: int) -> list[tuple[str, float]]:
    text = "x" * size
    masked = WebSocketCodec(client=True).encode(text)

    websockets_server = Protocol(Side.SERVER)

    def websockets_round() -> None:
        websockets_server.receive_data(masked)
        for frame in websockets_server.events_received():
            websockets_server.send_text(frame.data)
        websockets_server.data_to_send()

    wsproto_server = WSConnection(ConnectionType.SERVER)
    _open_wsproto(wsproto_server)

    def wsproto_round() -> None:
        wsproto_server.receive_data(masked)
        for event in wsproto_server.events():
            wsproto_server.send(TextMessage(data=event.data))

    return [
        ("websockets sans-IO: echo round", best_ns(websockets_round, number // 4)),
        ("wsproto: echo round", best_ns(wsproto_round, number // 10)),
    ]


def _open_wsproto(connection: WSConnection) -> None:
    """Put a wsproto server connection in the OPEN state through a real handshake."""
    from wsproto.events import AcceptConnection, Request

    client = WSConnection(ConnectionType.CLIENT)
    connection.receive_data(client.send(Request(host="localhost", target="/")))
    for event in connection.events():
        if isinstance(event, Request):
            client.receive_data(connection.send(AcceptConnection()))
    list(client.events())


def mask_rows(size: int, number: int) -> list[tuple[str, float]]:
    def xor_int(data: bytes, mask: bytes) -> bytes:
        n = len(data)
        key = int.from_bytes((mask * ((n >> 2) + 1))[:n], "little")
        return (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")

    tables = [bytes(i ^ j for j in range(256)) for i in range(256)]

    def xor_translate(data: bytes, mask: bytes) -> bytes:
        out = bytearray(data)
        for lane in range(4):
            out[lane::4] = out[lane::4].translate(tables[mask[lane]])
        return bytes(out)

    rows = []
    mask = os.urandom(4)
    for length in (size, 1024, 65536):
        data = os.urandom(length)
        assert apply_mask(data, mask) == xor_int(data, mask) == xor_translate(data, mask)
        count = max(200, number // max(1, length // 64))
        for name, function in (
            ("C apply_mask", apply_mask),
            ("int XOR", xor_int),
            ("translate", xor_translate),
        ):
            rows.append((f"unmask {length} B: {name}", best_ns(lambda f=function, d=data: f(d, mask), count)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="message size in bytes (default 64)")
    parser.add_argument("--number", type=int, default=200_000, help="messages per repeat")
    args = parser.parse_args()
    print(f"WebSocket codec, {args.size}-byte text messages, Python {sys.version.split()[0]}")
    for title, rows in (
        ("pyswoole codec", codec_rows(args.size, args.number)),
        ("reference sans-IO libraries", reference_rows(args.size, args.number)),
        ("masking", mask_rows(args.size, args.number)),
    ):
        print(f"\n{title}")
        for name, ns in rows:
            print(f"  {name:<45} {ns:>10.0f} ns")


if __name__ == "__main__":
    main()
