"""The sans-IO WebSocket codec, driven with raw bytes.

Grouped after the Autobahn test suite: framing, pings/pongs, reserved bits, opcodes,
fragmentation, UTF-8, close handling, limits, compression; then the opening handshake, the
encoder, and byte-level interop with the ``websockets`` library's own sans-IO protocol.
Frames fed to the codec are built here by hand (``frame()``), not with the codec's encoder.
"""

from __future__ import annotations

import itertools
import os
import pickle
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Close, Opcode
from websockets.protocol import Protocol, Side

from pyswoole.protocol._websocket import pack, parse_frame
from pyswoole.protocol.websocket import (
    CLOSE_MESSAGE_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_STATUS_ERROR,
    FLAG_COMPRESS,
    FLAG_FIN,
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_CONTINUATION,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    CloseFrame,
    DeflateParams,
    Frame,
    HandshakeError,
    ProtocolError,
    WebSocketCodec,
    accept_deflate,
    accept_key,
    client_request,
    encode_frame,
    negotiate_deflate,
    new_key,
    select_subprotocol,
    server_handshake,
    validate_request,
    validate_response,
)

MASK = b"\x37\xfa\x21\x3d"


def frame(
    payload: bytes | str,
    opcode: int = OPCODE_TEXT,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = MASK,
) -> bytes:
    """One frame built by hand (``rsv``: the three reserved bits as 0..7, RSV1 = 4)."""
    if isinstance(payload, str):
        payload = payload.encode()
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        header = bytes((first, mask_bit | length))
    elif length < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return header + payload
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def deflate(data: bytes) -> bytes:
    """A permessage-deflate payload (no context)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def server(**options) -> WebSocketCodec:
    return WebSocketCodec(**options)


def only(events: list) -> Frame:
    assert len(events) == 1, events
    return events[0]


def error_code(events: list) -> int:
    assert events and isinstance(events[-1], ProtocolError), events
    return events[-1].code


def server_read(codec: WebSocketCodec, chunk: bytes) -> list:
    """What a server does with each read: one whole message decoded in C, else the codec."""
    message = parse_frame(chunk, codec.fd, codec.simple_limit)
    return [message] if message is not None else codec.feed(chunk)


# ---- 1. Framing ------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 128, 65535, 65536, 300_000])
def test_text_and_binary_of_every_length_class(length: int) -> None:
    codec = server()
    text = "a" * length
    assert only(codec.feed(frame(text))).data == text
    binary = os.urandom(length)
    message = only(codec.feed(frame(binary, OPCODE_BINARY)))
    assert (message.data, message.opcode, message.finish, message.flags) == (
        binary,
        OPCODE_BINARY,
        True,
        FLAG_FIN,
    )


def test_frame_fields_and_fd() -> None:
    message = only(WebSocketCodec(fd=42).feed(frame("hi")))
    assert isinstance(message.data, str)
    assert (message.fd, message.opcode, message.flags, message.finish) == (42, OPCODE_TEXT, FLAG_FIN, True)


def test_frames_pickle_with_their_fields() -> None:
    message = only(WebSocketCodec(fd=42).feed(frame("hi")))  # made in C
    close = CloseFrame(1001, "bye", b"\x03\xe9bye", 7)
    for original in (message, Frame(b"\x00", OPCODE_BINARY, 0, 3), close):
        copy = pickle.loads(pickle.dumps(original))
        assert type(copy) is type(original)
        assert (copy.data, copy.opcode, copy.flags, copy.fd) == (
            original.data,
            original.opcode,
            original.flags,
            original.fd,
        )
    assert (copy.code, copy.reason) == (1001, "bye")


def test_frames_delivered_byte_by_byte() -> None:
    codec = server()
    stream = frame("hello") + frame(b"x" * 300, OPCODE_BINARY) + frame(b"p", OPCODE_PING) + frame("y" * 70000)
    events = []
    for i in range(len(stream)):
        events += codec.feed(stream[i : i + 1])
    assert [(e.opcode, e.data) for e in events] == [
        (OPCODE_TEXT, "hello"),
        (OPCODE_BINARY, b"x" * 300),
        (OPCODE_PING, b"p"),
        (OPCODE_TEXT, "y" * 70000),
    ]


def test_many_frames_in_one_chunk_and_a_partial_tail() -> None:
    codec = server()
    stream = b"".join(frame(f"m{i}") for i in range(50))
    tail = frame("last")
    events = codec.feed(stream + tail[:3])
    assert [e.data for e in events] == [f"m{i}" for i in range(50)]
    assert [e.data for e in codec.feed(tail[3:])] == ["last"]


@settings(max_examples=60, deadline=None)
@given(
    messages=st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300)), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=12),
)
def test_any_chunking_gives_the_same_messages(messages: list, cuts: list[int]) -> None:
    stream = b"".join(frame(m, OPCODE_TEXT if isinstance(m, str) else OPCODE_BINARY) for m in messages)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    codec = server()
    events = []
    for start, stop in itertools.pairwise(points):
        events += codec.feed(stream[start:stop])
    assert [e.data for e in events] == messages


@settings(max_examples=150, deadline=None)
@given(
    messages=st.lists(
        st.one_of(
            st.text(max_size=700),
            st.binary(max_size=700),
            st.sampled_from([b"\xff", b"ok\xed\xa0\x80", "x" * 2000]),  # bad UTF-8, over the limit
            st.tuples(st.text(max_size=50), st.text(max_size=50)),  # two fragments, a ping between
        ),
        min_size=1,
        max_size=8,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=8000), max_size=12),
)
def test_the_server_read_path_matches_the_codec(messages: list, cuts: list) -> None:
    """The server's shortcut (parse_frame with simple_limit) gives what feed() alone gives, for
    any chunking, including fragments, pings, bad UTF-8 and messages over the limit."""
    parts = []
    for m in messages:
        if isinstance(m, tuple):
            parts += [frame(m[0], fin=False), frame(b"p", OPCODE_PING), frame(m[1], OPCODE_CONTINUATION)]
        elif isinstance(m, str):
            parts.append(frame(m))
        else:
            parts.append(frame(m, OPCODE_TEXT if m in (b"\xff", b"ok\xed\xa0\x80") else OPCODE_BINARY))
    stream = b"".join(parts)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})

    def run(read) -> list:
        codec = server(max_message_size=1500, fd=7)
        events = []
        for start, stop in itertools.pairwise(points):
            events += read(codec, stream[start:stop])
        return [
            (type(e), e.code) if isinstance(e, ProtocolError) else (type(e), e.opcode, e.data, e.flags, e.fd)
            for e in events
        ]

    assert run(server_read) == run(WebSocketCodec.feed)


def test_the_shortcut_takes_only_a_whole_simple_frame() -> None:
    codec = server(fd=3)
    whole = frame("héllo " * 200)  # over 512 bytes, not ASCII
    message = parse_frame(whole, codec.fd, codec.simple_limit)
    assert (type(message), message.data, message.opcode, message.flags, message.fd) == (
        Frame,
        "héllo " * 200,
        OPCODE_TEXT,
        FLAG_FIN,
        3,
    )
    for chunk in (whole[:-1], whole + frame("more"), frame("x", fin=False), frame(b"p", OPCODE_PING)):
        assert parse_frame(chunk, 3, codec.simple_limit) is None
    assert parse_frame(frame(b"\xff"), 3, codec.simple_limit) is None  # the codec reports it
    assert parse_frame(frame("hi", mask=None), 3, codec.simple_limit) is None
    assert parse_frame(frame("hi", rsv=4), 3, codec.simple_limit) is None
    assert parse_frame(frame("x" * 11), 3, 10) is None
    assert parse_frame(frame("hi"), 3, -1) is None
    codec.feed(whole[:10])  # a partial frame buffered: the next chunk is not a frame's start
    assert codec.simple_limit == -1
    assert only(server_read(codec, whole[10:])).data == "héllo " * 200
    assert codec.simple_limit == codec.max_message_size
    codec.feed(frame("frag", fin=False))
    assert codec.simple_limit == -1


def test_batch_decoding_stops_at_the_first_frame_it_cannot_take() -> None:
    codec = server()
    events = codec.feed(frame("one") + frame(b"\x00", OPCODE_BINARY) + frame(b"bad\xff") + frame("never"))
    assert [e.data for e in events[:2]] == ["one", b"\x00"]
    assert error_code(events) == CLOSE_MESSAGE_ERROR
    events = server(max_message_size=5).feed(frame("12345") + frame("123456"))
    assert events[0].data == "12345"
    assert error_code(events) == CLOSE_MESSAGE_TOO_BIG


@settings(max_examples=200, deadline=None)
@given(
    garbage=st.binary(max_size=400),
    prefix=st.sampled_from([b"", b"\x81\x85", b"\xc1\x80", b"\x01\x81", b"\x88\x82"]),
    client=st.booleans(),
    compressed=st.booleans(),
)
def test_arbitrary_bytes_never_raise(garbage: bytes, prefix: bytes, client: bool, compressed: bool) -> None:
    codec = WebSocketCodec(
        client=client, deflate=DeflateParams() if compressed else None, max_message_size=300
    )
    data = prefix + garbage
    events = []
    for start in range(0, len(data), 7):
        events += codec.feed(data[start : start + 7])
    assert all(isinstance(e, Frame) for e in events[:-1])
    if events and isinstance(events[-1], ProtocolError):
        assert events[-1].code in (CLOSE_PROTOCOL_ERROR, CLOSE_MESSAGE_ERROR, CLOSE_MESSAGE_TOO_BIG)


def test_unmasked_frame_from_a_client_is_a_protocol_error() -> None:
    assert error_code(server().feed(frame("hi", mask=None))) == CLOSE_PROTOCOL_ERROR


def test_masked_frame_from_a_server_is_a_protocol_error() -> None:
    assert error_code(WebSocketCodec(client=True).feed(frame("hi"))) == CLOSE_PROTOCOL_ERROR


def test_client_side_reads_unmasked_frames() -> None:
    assert only(WebSocketCodec(client=True).feed(frame("hi", mask=None))).data == "hi"


def test_64_bit_length_with_the_high_bit_set_is_a_protocol_error() -> None:
    header = struct.pack("!BBQ", 0x82, 0xFF, 1 << 63) + MASK
    assert error_code(server(max_message_size=1 << 64).feed(header)) == CLOSE_PROTOCOL_ERROR


def test_events_before_an_error_are_kept_and_later_input_is_ignored() -> None:
    codec = server()
    events = codec.feed(frame("ok") + frame("bad", rsv=2) + frame("after"))
    assert events[0].data == "ok"
    assert error_code(events) == CLOSE_PROTOCOL_ERROR
    assert len(events) == 2
    assert codec.feed(frame("more")) == []


# ---- 2. Pings and pongs ----------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"ping!", bytes(range(125)), b"\xff\xfe\x00"])
def test_ping_is_surfaced_with_its_payload(payload: bytes) -> None:
    ping = only(server().feed(frame(payload, OPCODE_PING)))
    assert (ping.opcode, ping.data) == (OPCODE_PING, payload)


def test_ping_over_125_bytes_is_a_protocol_error() -> None:
    assert error_code(server().feed(frame(b"x" * 126, OPCODE_PING))) == CLOSE_PROTOCOL_ERROR


def test_fragmented_ping_is_a_protocol_error() -> None:
    assert error_code(server().feed(frame(b"x", OPCODE_PING, fin=False))) == CLOSE_PROTOCOL_ERROR


def test_unsolicited_pong_is_surfaced() -> None:
    pong = only(server().feed(frame(b"hb", OPCODE_PONG)))
    assert (pong.opcode, pong.data) == (OPCODE_PONG, b"hb")


def test_pong_reply_is_encoded_unmasked_by_a_server() -> None:
    reply = server().encode(b"abc", OPCODE_PONG)
    assert reply == bytes((0x8A, 3)) + b"abc"


# ---- 3. Reserved bits ------------------------------------------------------------------------


@pytest.mark.parametrize("rsv", range(1, 8))
@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY, OPCODE_PING, OPCODE_CLOSE])
def test_reserved_bits_without_an_extension(rsv: int, opcode: int) -> None:
    assert error_code(server().feed(frame(b"", opcode, rsv=rsv))) == CLOSE_PROTOCOL_ERROR


@pytest.mark.parametrize("rsv", [1, 2, 3])
def test_rsv2_and_rsv3_even_with_compression(rsv: int) -> None:
    assert error_code(server(deflate=DeflateParams()).feed(frame("x", rsv=rsv))) == CLOSE_PROTOCOL_ERROR


# ---- 4. Opcodes ------------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
def test_reserved_opcodes(opcode: int) -> None:
    assert error_code(server().feed(frame(b"", opcode))) == CLOSE_PROTOCOL_ERROR
    assert error_code(server().feed(frame(b"payload", opcode))) == CLOSE_PROTOCOL_ERROR


# ---- 5. Fragmentation ------------------------------------------------------------------------


def test_fragmented_text_is_assembled() -> None:
    codec = server()
    assert codec.feed(frame("Hel", fin=False)) == []
    assert codec.feed(frame("lo ", OPCODE_CONTINUATION, fin=False)) == []
    message = only(codec.feed(frame("world", OPCODE_CONTINUATION)))
    assert (message.data, message.opcode, message.finish) == ("Hello world", OPCODE_TEXT, True)


def test_fragmented_binary_with_empty_fragments() -> None:
    codec = server()
    stream = (
        frame(b"", OPCODE_BINARY, fin=False)
        + frame(b"\x00\x01", OPCODE_CONTINUATION, fin=False)
        + frame(b"", OPCODE_CONTINUATION)
    )
    message = only(codec.feed(stream))
    assert (message.data, message.opcode) == (b"\x00\x01", OPCODE_BINARY)


def test_control_frames_between_fragments() -> None:
    codec = server()
    events = codec.feed(
        frame("frag1", fin=False)
        + frame(b"p1", OPCODE_PING)
        + frame("frag2", OPCODE_CONTINUATION, fin=False)
        + frame(b"p2", OPCODE_PONG)
        + frame("frag3", OPCODE_CONTINUATION)
    )
    assert [(e.opcode, e.data) for e in events] == [
        (OPCODE_PING, b"p1"),
        (OPCODE_PONG, b"p2"),
        (OPCODE_TEXT, "frag1frag2frag3"),
    ]


def test_close_between_fragments_ends_the_connection() -> None:
    codec = server()
    events = codec.feed(frame("frag1", fin=False) + frame(struct.pack("!H", 1000), OPCODE_CLOSE))
    assert isinstance(only(events), CloseFrame)


def test_continuation_without_a_message_is_a_protocol_error() -> None:
    assert error_code(server().feed(frame("x", OPCODE_CONTINUATION))) == CLOSE_PROTOCOL_ERROR
    assert error_code(server().feed(frame("x", OPCODE_CONTINUATION, fin=False))) == CLOSE_PROTOCOL_ERROR


def test_new_message_inside_a_fragmented_one_is_a_protocol_error() -> None:
    codec = server()
    assert codec.feed(frame("a", fin=False)) == []
    assert error_code(codec.feed(frame("b"))) == CLOSE_PROTOCOL_ERROR


def test_fragments_surfaced_when_asked() -> None:
    codec = server(fragments=True)
    events = codec.feed(
        frame("ab\xc3".encode("latin-1"), fin=False)  # ends inside a 2-byte character
        + frame(b"\xa9cd", OPCODE_CONTINUATION)
        + frame(b"\x01", OPCODE_BINARY)
    )
    assert [(e.opcode, e.data, e.finish) for e in events] == [
        (OPCODE_TEXT, "ab", False),
        (OPCODE_CONTINUATION, "\xe9cd", True),
        (OPCODE_BINARY, b"\x01", True),
    ]


# ---- 6. UTF-8 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff",
        b"\xc0\xaf",  # overlong '/'
        b"\xed\xa0\x80",  # UTF-16 surrogate
        b"\xf4\x90\x80\x80",  # beyond U+10FFFF
        b"ok\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
    ],
)
def test_invalid_utf8_in_a_text_message(payload: bytes) -> None:
    assert error_code(server().feed(frame(payload))) == CLOSE_MESSAGE_ERROR


def test_valid_utf8_split_across_fragments_inside_characters() -> None:
    text = "κόσμε 𝄞 héllo"
    raw = text.encode()
    for cut in range(1, len(raw)):
        codec = server()
        events = codec.feed(frame(raw[:cut], fin=False) + frame(raw[cut:], OPCODE_CONTINUATION))
        assert only(events).data == text


def test_invalid_utf8_fails_fast_before_the_message_ends() -> None:
    codec = server()
    assert codec.feed(frame("good", fin=False)) == []
    assert (
        error_code(codec.feed(frame(b"\xce\xba\xff", OPCODE_CONTINUATION, fin=False))) == CLOSE_MESSAGE_ERROR
    )


def test_truncated_character_at_the_end_of_a_message() -> None:
    codec = server()
    events = codec.feed(frame(b"ab\xe2\x82", fin=False) + frame(b"", OPCODE_CONTINUATION))
    assert error_code(events) == CLOSE_MESSAGE_ERROR


def test_binary_messages_are_not_validated() -> None:
    assert only(server().feed(frame(b"\xff\xfe", OPCODE_BINARY))).data == b"\xff\xfe"


@settings(max_examples=50, deadline=None)
@given(text=st.text(min_size=1, max_size=200), cuts=st.lists(st.integers(0, 800), max_size=6))
def test_any_fragmentation_of_valid_text(text: str, cuts: list[int]) -> None:
    raw = text.encode()
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    pieces = [raw[a:b] for a, b in itertools.pairwise(points)] or [b""]
    stream = b"".join(
        frame(piece, OPCODE_TEXT if i == 0 else OPCODE_CONTINUATION, fin=i == len(pieces) - 1)
        for i, piece in enumerate(pieces)
    )
    assert only(server().feed(stream)).data == text


# ---- 7. Close handling -----------------------------------------------------------------------


def test_close_with_code_and_reason() -> None:
    close = only(server().feed(frame(struct.pack("!H", 1001) + "bye 👋".encode(), OPCODE_CLOSE)))
    assert isinstance(close, CloseFrame)
    assert (close.opcode, close.code, close.reason) == (OPCODE_CLOSE, 1001, "bye 👋")


def test_empty_close_has_no_status() -> None:
    close = only(server().feed(frame(b"", OPCODE_CLOSE)))
    assert (close.code, close.reason) == (CLOSE_STATUS_ERROR, "")


def test_close_with_one_byte_payload_is_a_protocol_error() -> None:
    assert error_code(server().feed(frame(b"\x03", OPCODE_CLOSE))) == CLOSE_PROTOCOL_ERROR


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
)
def test_valid_close_codes(code: int) -> None:
    assert only(server().feed(frame(struct.pack("!H", code), OPCODE_CLOSE))).code == code


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
def test_invalid_close_codes(code: int) -> None:
    assert error_code(server().feed(frame(struct.pack("!H", code), OPCODE_CLOSE))) == CLOSE_PROTOCOL_ERROR


def test_close_reason_must_be_utf8() -> None:
    payload = struct.pack("!H", 1000) + b"\xce\xba\xed\xa0\x80"
    assert error_code(server().feed(frame(payload, OPCODE_CLOSE))) == CLOSE_MESSAGE_ERROR


def test_close_payload_over_125_bytes_is_a_protocol_error() -> None:
    payload = struct.pack("!H", 1000) + b"x" * 124
    assert error_code(server().feed(frame(payload, OPCODE_CLOSE))) == CLOSE_PROTOCOL_ERROR


def test_input_after_close_is_ignored() -> None:
    codec = server()
    events = codec.feed(frame(struct.pack("!H", 1000), OPCODE_CLOSE) + frame("late"))
    assert [type(e) for e in events] == [CloseFrame]
    assert codec.close_received
    assert codec.feed(frame("later")) == []


def test_close_reply_echoes_the_code_once() -> None:
    codec = server()
    close = only(codec.feed(frame(struct.pack("!H", 4001) + b"why", OPCODE_CLOSE)))
    reply = codec.close(close.code)
    assert reply == bytes((0x88, 2)) + struct.pack("!H", 4001)
    assert codec.close(CLOSE_NORMAL) == b""


def test_close_reply_to_an_empty_close_is_empty() -> None:
    codec = server()
    close = only(codec.feed(frame(b"", OPCODE_CLOSE)))
    assert codec.close(close.code) == b"\x88\x00"


def test_client_close_frame_is_masked_and_readable_by_a_server() -> None:
    wire = WebSocketCodec(client=True).close(1000, "done")
    close = only(server().feed(wire))
    assert (close.code, close.reason) == (1000, "done")


@pytest.mark.parametrize(("code", "reason"), [(1005, "x"), (1006, ""), (999, ""), (1000, "r" * 124)])
def test_unsendable_close(code: int, reason: str) -> None:
    if code == 1005:
        assert server().close(code, reason) == b"\x88\x00"  # no status: the reason cannot be sent
        return
    with pytest.raises(ValueError):
        server().close(code, reason)


# ---- 9. Limits -------------------------------------------------------------------------------


def test_message_over_the_limit_fails_as_soon_as_the_header_arrives() -> None:
    codec = server(max_message_size=1000)
    header = frame(b"x" * 1001, OPCODE_BINARY)[:8]  # 2-byte header, 2-byte length, mask
    assert error_code(codec.feed(header)) == CLOSE_MESSAGE_TOO_BIG


def test_message_at_the_limit_is_accepted() -> None:
    assert len(only(server(max_message_size=1000).feed(frame(b"x" * 1000, OPCODE_BINARY))).data) == 1000


def test_fragmented_message_over_the_limit() -> None:
    codec = server(max_message_size=1000)
    assert codec.feed(frame("a" * 600, fin=False)) == []
    assert error_code(codec.feed(frame("a" * 401, OPCODE_CONTINUATION))) == CLOSE_MESSAGE_TOO_BIG


def test_small_messages_obey_a_tiny_limit() -> None:
    assert error_code(server(max_message_size=10).feed(frame("x" * 11))) == CLOSE_MESSAGE_TOO_BIG


def test_decompression_bomb_is_stopped_at_the_limit() -> None:
    bomb = deflate(b"\x00" * 10_000_000)
    assert len(bomb) < 20_000
    codec = server(max_message_size=1 << 20, deflate=DeflateParams())
    assert error_code(codec.feed(frame(bomb, OPCODE_BINARY, rsv=4))) == CLOSE_MESSAGE_TOO_BIG


# ---- 12/13. Compression (permessage-deflate) -------------------------------------------------


def test_compressed_message_is_inflated_and_flagged() -> None:
    codec = server(deflate=DeflateParams())
    message = only(codec.feed(frame(deflate(b"Hello, compressed"), rsv=4)))
    assert (message.data, message.flags) == ("Hello, compressed", FLAG_FIN | FLAG_COMPRESS)


def test_compressed_fragmented_message_with_rsv1_on_the_first_frame_only() -> None:
    payload = deflate(("fragmented " * 50).encode())
    third = len(payload) // 3
    codec = server(deflate=DeflateParams())
    events = codec.feed(
        frame(payload[:third], fin=False, rsv=4)
        + frame(payload[third : 2 * third], OPCODE_CONTINUATION, fin=False)
        + frame(payload[2 * third :], OPCODE_CONTINUATION)
    )
    assert only(events).data == "fragmented " * 50


def test_rsv1_on_a_continuation_frame_is_a_protocol_error() -> None:
    codec = server(deflate=DeflateParams())
    stream = frame(b"a", fin=False) + frame(b"b", OPCODE_CONTINUATION, rsv=4)
    assert error_code(codec.feed(stream)) == CLOSE_PROTOCOL_ERROR


def test_rsv1_on_a_control_frame_is_a_protocol_error() -> None:
    assert (
        error_code(server(deflate=DeflateParams()).feed(frame(b"", OPCODE_PING, rsv=4)))
        == CLOSE_PROTOCOL_ERROR
    )


def test_corrupt_compressed_data_is_a_protocol_error() -> None:
    codec = server(deflate=DeflateParams())
    assert error_code(codec.feed(frame(b"\xff\xff\xff\xff", rsv=4))) == CLOSE_PROTOCOL_ERROR


def test_invalid_utf8_inside_compressed_text() -> None:
    codec = server(deflate=DeflateParams())
    assert error_code(codec.feed(frame(deflate(b"ok\xff"), rsv=4))) == CLOSE_MESSAGE_ERROR


@pytest.mark.parametrize(
    "params",
    [
        DeflateParams(),
        DeflateParams(server_no_context_takeover=True, client_no_context_takeover=True),
        DeflateParams(server_max_window_bits=9, client_max_window_bits=10),
        DeflateParams(client_no_context_takeover=True, server_max_window_bits=12),
    ],
)
def test_round_trip_both_ways_over_many_messages(params: DeflateParams) -> None:
    client = WebSocketCodec(client=True, deflate=params)
    server_side = server(deflate=params)
    messages = ["", *(f"message {i}: " + "repeated text " * (i % 7) for i in range(40)), "", "ü" * 5000]
    for text in messages:
        wire = client.encode(text, OPCODE_TEXT, FLAG_FIN | FLAG_COMPRESS)
        assert wire[0] & 0x40
        got = only(server_side.feed(wire))
        assert (got.data, got.flags) == (text, FLAG_FIN | FLAG_COMPRESS)
        assert only(client.feed(server_side.encode(text, OPCODE_TEXT, FLAG_FIN | FLAG_COMPRESS))).data == text


def test_context_takeover_makes_repeats_smaller() -> None:
    text = "the same sentence, over and over, compresses to almost nothing the second time."
    takeover = WebSocketCodec(deflate=DeflateParams())
    fresh = WebSocketCodec(deflate=DeflateParams(server_no_context_takeover=True))
    flags = FLAG_FIN | FLAG_COMPRESS
    first, second = takeover.encode(text, OPCODE_TEXT, flags), takeover.encode(text, OPCODE_TEXT, flags)
    assert len(second) < len(first) / 2
    assert fresh.encode(text, OPCODE_TEXT, flags) == fresh.encode(text, OPCODE_TEXT, flags)


def test_compressed_fragments_sent_by_the_encoder() -> None:
    client = WebSocketCodec(client=True, deflate=DeflateParams())
    wire = (
        client.encode("part one, ", OPCODE_TEXT, FLAG_COMPRESS)
        + client.encode("part two, ", OPCODE_CONTINUATION, FLAG_COMPRESS)
        + client.encode("end", OPCODE_CONTINUATION, FLAG_FIN | FLAG_COMPRESS)
    )
    assert only(server(deflate=DeflateParams()).feed(wire)).data == "part one, part two, end"


def test_without_compression_flag_or_negotiation_nothing_is_compressed() -> None:
    assert not WebSocketCodec(deflate=DeflateParams()).encode("abc")[0] & 0x40
    assert not WebSocketCodec().encode("abc", OPCODE_TEXT, FLAG_FIN | FLAG_COMPRESS)[0] & 0x40


def test_a_256_byte_window_sends_uncompressed_but_still_inflates() -> None:
    params = DeflateParams(server_max_window_bits=8)
    server_side = server(deflate=params)
    assert not server_side.encode("x" * 100, OPCODE_TEXT, FLAG_FIN | FLAG_COMPRESS)[0] & 0x40
    client = WebSocketCodec(client=True, deflate=params)
    assert (
        only(server_side.feed(client.encode("y" * 100, OPCODE_TEXT, FLAG_FIN | FLAG_COMPRESS))).data
        == "y" * 100
    )


@pytest.mark.parametrize(
    ("offer", "expected"),
    [
        ("permessage-deflate", "permessage-deflate"),
        ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
        (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_no_context_takeover",
        ),
        ("permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=10"),
        ('permessage-deflate; client_max_window_bits="9"', "permessage-deflate; client_max_window_bits=9"),
        ("x-webkit-deflate-frame, permessage-deflate", "permessage-deflate"),
        ("permessage-deflate; server_max_window_bits=16, permessage-deflate", "permessage-deflate"),
        ("permessage-deflate; foo=1", None),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
        ("permessage-deflate; server_max_window_bits", None),
        ("permessage-deflate; server_no_context_takeover=1", None),
        ("", None),
        (None, None),
    ],
)
def test_server_negotiation(offer: str | None, expected: str | None) -> None:
    agreed = negotiate_deflate(offer, DeflateParams())
    assert (agreed.header() if agreed else None) == expected


def test_server_negotiation_imposes_its_own_settings() -> None:
    settings = DeflateParams(
        server_no_context_takeover=True, client_no_context_takeover=True, server_max_window_bits=11
    )
    agreed = negotiate_deflate(
        "permessage-deflate; server_max_window_bits=13; client_max_window_bits", settings
    )
    assert agreed is not None
    assert agreed.header() == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11"
    )


def test_server_limits_the_client_window_only_when_the_client_supports_it() -> None:
    settings = DeflateParams(client_max_window_bits=10)
    supported = negotiate_deflate("permessage-deflate; client_max_window_bits", settings)
    assert supported is not None and supported.header() == "permessage-deflate; client_max_window_bits=10"
    unsupported = negotiate_deflate("permessage-deflate", settings)
    assert unsupported is not None and unsupported.client_max_window_bits == 15


@pytest.mark.parametrize(
    "answer",
    [
        "permessage-deflate; foo",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate, permessage-deflate",
        "x-other",
    ],
)
def test_client_rejects_invalid_answers(answer: str) -> None:
    with pytest.raises(HandshakeError):
        accept_deflate(answer, DeflateParams())


def test_client_accepts_what_the_server_imposes() -> None:
    agreed = accept_deflate(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=10",
        DeflateParams(),
    )
    assert (
        agreed.server_no_context_takeover,
        agreed.client_no_context_takeover,
        agreed.client_max_window_bits,
    ) == (
        True,
        True,
        10,
    )


def test_client_offer_with_its_own_window_limit() -> None:
    offer = DeflateParams(client_max_window_bits=10, client_no_context_takeover=True)
    assert (
        offer.header(offer=True)
        == "permessage-deflate; client_no_context_takeover; client_max_window_bits=10"
    )
    assert accept_deflate("permessage-deflate", offer).client_max_window_bits == 10
    assert accept_deflate("permessage-deflate; client_max_window_bits=12", offer).client_max_window_bits == 10
    assert accept_deflate("permessage-deflate; client_max_window_bits=9", offer).client_max_window_bits == 9


def test_client_rejects_a_server_that_ignores_its_requests() -> None:
    with pytest.raises(HandshakeError):
        accept_deflate("permessage-deflate", DeflateParams(server_no_context_takeover=True))
    with pytest.raises(HandshakeError):
        accept_deflate(
            "permessage-deflate; server_max_window_bits=12", DeflateParams(server_max_window_bits=10)
        )


# ---- Opening handshake -----------------------------------------------------------------------


def upgrade_headers(**extra: str) -> dict[str, str]:
    headers = {
        "host": "example.com",
        "upgrade": "websocket",
        "connection": "keep-alive, Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
    }
    headers.update(extra)
    return headers


def test_accept_key_of_rfc_6455() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_valid_request_gives_its_key() -> None:
    assert validate_request("GET", upgrade_headers(upgrade="WebSocket")) == "dGhlIHNhbXBsZSBub25jZQ=="


@pytest.mark.parametrize(
    ("method", "change", "status"),
    [
        ("POST", {}, 405),
        ("GET", {"upgrade": "h2c"}, 400),
        ("GET", {"connection": "keep-alive"}, 400),
        ("GET", {"sec-websocket-version": "8"}, 426),
        ("GET", {"sec-websocket-key": "not base64!"}, 400),
        ("GET", {"sec-websocket-key": "c2hvcnQ="}, 400),
    ],
)
def test_invalid_requests(method: str, change: dict[str, str], status: int) -> None:
    with pytest.raises(HandshakeError) as caught:
        validate_request(method, upgrade_headers(**change))
    assert caught.value.status == status
    if status == 426:
        assert ("Sec-WebSocket-Version", "13") in caught.value.headers


def test_missing_headers_are_rejected() -> None:
    headers = upgrade_headers()
    del headers["sec-websocket-key"]
    with pytest.raises(HandshakeError):
        validate_request("GET", headers)


def test_subprotocol_selection_follows_the_server_preference() -> None:
    assert select_subprotocol("chat, superchat", ["superchat", "chat"]) == "superchat"
    assert select_subprotocol("chat", ["other"]) is None
    assert select_subprotocol(None, ["chat"]) is None


def test_server_handshake_response() -> None:
    handshake = server_handshake(
        "GET",
        upgrade_headers(
            **{"sec-websocket-protocol": "v2, v1", "sec-websocket-extensions": "permessage-deflate"}
        ),
        subprotocols=["v1"],
        compression=DeflateParams(),
    )
    assert (handshake.subprotocol, handshake.deflate) == ("v1", DeflateParams())
    assert handshake.response() == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: v1\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    )


def test_server_handshake_without_compression_ignores_the_offer() -> None:
    handshake = server_handshake("GET", upgrade_headers(**{"sec-websocket-extensions": "permessage-deflate"}))
    assert handshake.deflate is None
    assert b"Extensions" not in handshake.response()


def test_client_request_and_response_round_trip() -> None:
    key = new_key()
    request = client_request(
        "example.com:8080", "/chat?room=1", key, ["v1", "v2"], DeflateParams(), [("Origin", "x")]
    )
    head, _, rest = request.partition(b"\r\n\r\n")
    assert rest == b""
    lines = head.decode().split("\r\n")
    assert lines[0] == "GET /chat?room=1 HTTP/1.1"
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    assert headers["origin"] == "x"
    assert headers["sec-websocket-extensions"] == "permessage-deflate; client_max_window_bits"
    handshake = server_handshake("GET", headers, ["v2"], DeflateParams())
    answer = {k.lower(): v for k, v in handshake.headers}
    assert validate_response(101, answer, key, ["v1", "v2"], DeflateParams()) == ("v2", DeflateParams())


@pytest.mark.parametrize(
    ("status", "change", "subprotocols", "compression"),
    [
        (403, {}, [], None),
        (101, {"sec-websocket-accept": "wrong"}, [], None),
        (101, {"upgrade": "h2c"}, [], None),
        (101, {"sec-websocket-protocol": "unoffered"}, ["v1"], None),
        (101, {"sec-websocket-extensions": "permessage-deflate"}, [], None),
    ],
)
def test_client_rejects_bad_responses(status: int, change: dict, subprotocols: list, compression) -> None:
    key = new_key()
    headers = {
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-accept": accept_key(key),
        **change,
    }
    with pytest.raises(HandshakeError) as caught:
        validate_response(status, headers, key, subprotocols, compression)
    assert caught.value.status == status


# ---- Encoder and broadcast frames ------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536])
def test_server_frames_are_unmasked_with_minimal_length(length: int) -> None:
    payload = b"z" * length
    assert encode_frame(payload, OPCODE_BINARY) == frame(payload, OPCODE_BINARY, mask=None)
    assert only(WebSocketCodec(client=True).feed(encode_frame(payload, OPCODE_BINARY))).data == payload


@pytest.mark.parametrize("length", [0, 3, 125, 126, 70000])
def test_client_frames_are_masked_with_fresh_keys(length: int) -> None:
    client = WebSocketCodec(client=True)
    first, second = client.encode(b"q" * length, OPCODE_BINARY), client.encode(b"q" * length, OPCODE_BINARY)
    assert first[1] & 0x80 and second[1] & 0x80
    assert first != second or length == 0
    assert only(server().feed(first)).data == b"q" * length


def test_masking_keys_do_not_repeat_across_refills() -> None:
    client = WebSocketCodec(client=True)
    keys = {client.encode(b"k", OPCODE_BINARY)[2:6] for _ in range(3000)}
    assert len(keys) > 2990


@pytest.mark.parametrize("data", ["", "ascii", "κόσμε 𝄞", b"\x00\xff", bytearray(b"ba"), memoryview(b"mv")])
def test_pack_encodes_text_and_any_bytes_like(data: str | bytes) -> None:
    payload = data.encode() if isinstance(data, str) else bytes(data)
    opcode = OPCODE_TEXT if isinstance(data, str) else OPCODE_BINARY
    assert pack(data, opcode) == frame(payload, opcode, mask=None)
    assert pack(data, opcode, False, True) == frame(payload, opcode, fin=False, rsv=4, mask=None)


def test_pack_refuses_what_cannot_be_sent() -> None:
    with pytest.raises(UnicodeEncodeError):
        pack("lone \ud800 surrogate", OPCODE_TEXT)
    with pytest.raises(TypeError):
        pack(42, OPCODE_TEXT)
    with pytest.raises(ValueError):
        pack(b"", 16)
    with pytest.raises(UnicodeEncodeError):
        server().encode("\udc00")


def test_frame_pack_is_one_encoding_for_many_connections() -> None:
    wire = Frame.pack("to everyone")
    peers = [WebSocketCodec(client=True) for _ in range(3)]
    assert [only(peer.feed(wire)).data for peer in peers] == ["to everyone"] * 3


def test_frame_pack_compressed_reaches_peers_with_context_takeover() -> None:
    peers = [WebSocketCodec(client=True, deflate=DeflateParams()) for _ in range(2)]
    for peer in peers:  # each peer already has its own history in its window
        assert only(
            peer.feed(peer_frame := WebSocketCodec(deflate=DeflateParams()).encode("hist", 1, 3))
        ).data
        assert peer_frame[0] & 0x40
    shared = Frame.pack("broadcast " * 20, OPCODE_TEXT, FLAG_FIN | FLAG_COMPRESS)
    assert shared[0] & 0x40
    assert [only(peer.feed(shared)).data for peer in peers] == ["broadcast " * 20] * 2


def test_frame_pack_never_compresses_fragments_or_control_frames() -> None:
    assert not Frame.pack("part", OPCODE_TEXT, FLAG_COMPRESS)[0] & 0x40
    assert not Frame.pack(b"ping", OPCODE_PING, FLAG_FIN | FLAG_COMPRESS)[0] & 0x40


def test_fragmented_sending_rules() -> None:
    codec = server()
    with pytest.raises(ValueError):
        codec.encode("x", OPCODE_CONTINUATION)
    codec.encode("first", OPCODE_TEXT, 0)
    with pytest.raises(ValueError):
        codec.encode("second message", OPCODE_TEXT)
    with pytest.raises(ValueError):
        codec.encode(b"x" * 126, OPCODE_PING)


# ---- Byte-level interop with the websockets library's sans-IO protocol -----------------------


def websockets_peer(side: Side, compressed: bool) -> Protocol:
    peer = Protocol(side, max_size=None)
    if compressed:
        peer.extensions = [PerMessageDeflate(False, False, 15, 15)]
    return peer


@pytest.mark.parametrize("compressed", [False, True])
def test_websockets_client_frames_parse_here(compressed: bool) -> None:
    peer = websockets_peer(Side.CLIENT, compressed)
    peer.send_text(b"hello " * 100)
    peer.send_binary(b"\x00\xff" * 40000)
    peer.send_text(b"frag-", fin=False)
    peer.send_ping(b"ping")
    peer.send_continuation(b"ment", fin=True)
    peer.send_close(1001, "going")
    codec = server(deflate=DeflateParams() if compressed else None)
    events = codec.feed(b"".join(peer.data_to_send()))
    assert [(e.opcode, e.data if e.opcode != OPCODE_CLOSE else e.code) for e in events] == [
        (OPCODE_TEXT, "hello " * 100),
        (OPCODE_BINARY, b"\x00\xff" * 40000),
        (OPCODE_PING, b"ping"),
        (OPCODE_TEXT, "frag-ment"),
        (OPCODE_CLOSE, 1001),
    ]


@pytest.mark.parametrize("compressed", [False, True])
def test_frames_made_here_parse_in_websockets(compressed: bool) -> None:
    peer = websockets_peer(Side.SERVER, compressed)
    codec = WebSocketCodec(client=True, deflate=DeflateParams() if compressed else None)
    flags = FLAG_FIN | FLAG_COMPRESS
    wire = (
        codec.encode("héllo " * 100, OPCODE_TEXT, flags)
        + codec.encode(b"\x01" * 70000, OPCODE_BINARY, flags)
        + codec.encode(b"hb", OPCODE_PING)
        + codec.close(4000, "done")
    )
    peer.receive_data(wire)
    events = peer.events_received()
    assert [(e.opcode, e.data) for e in events[:3]] == [
        (Opcode.TEXT, ("héllo " * 100).encode()),
        (Opcode.BINARY, b"\x01" * 70000),
        (Opcode.PING, b"hb"),
    ]
    close = Close.parse(events[3].data)
    assert (events[3].opcode, close.code, close.reason) == (Opcode.CLOSE, 4000, "done")
