"""Sans-IO framing: whole packets whatever the chunking, and clear errors for bad input."""

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswoole.protocol.framing import LENGTH_TYPES, EofFramer, FramingError, LengthFramer, make_framer

payloads = st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=30)


def rechunk(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    return [stream[a:b] for a, b in itertools.pairwise(points)]


def feed_all(framer, chunks):
    packets = []
    for chunk in chunks:
        packets.extend(framer.feed(chunk))
    return packets


@settings(max_examples=200, deadline=None)
@given(
    payloads,
    st.lists(st.integers(min_value=0, max_value=100_000), max_size=40),
    st.sampled_from(sorted(LENGTH_TYPES)),
)
def test_length_framer_any_chunking(bodies, cuts, code):
    fmt = struct.Struct(LENGTH_TYPES[code])
    limit = {"c": 127, "C": 255}.get(code, 300)
    bodies = [b[:limit] for b in bodies]
    packets = [b"\xaa" + fmt.pack(len(b)) + b for b in bodies]  # one byte before the length field
    stream = b"".join(packets)
    framer = LengthFramer(code, length_offset=1, body_offset=1 + fmt.size)
    assert feed_all(framer, rechunk(stream, cuts)) == packets
    assert framer.buffered == 0


@settings(max_examples=200, deadline=None)
@given(payloads, st.lists(st.integers(min_value=0, max_value=100_000), max_size=40))
def test_eof_split_any_chunking(bodies, cuts):
    packets = [b.replace(b"\r\n", b"").replace(b"\r", b"") + b"\r\n" for b in bodies]
    stream = b"".join(packets)
    framer = EofFramer(b"\r\n", split=True)
    assert feed_all(framer, rechunk(stream, cuts)) == packets


def test_eof_check_delivers_when_buffer_ends_with_eof():
    framer = EofFramer(b"\n", split=False)
    assert framer.feed(b"a\nb") == []
    assert framer.feed(b"\n") == [b"a\nb\n"]


def test_length_over_max_is_rejected():
    framer = LengthFramer("N", 0, 4, max_length=100)
    with pytest.raises(FramingError, match="package_max_length"):
        framer.feed(struct.pack("!I", 1000) + b"x")


def test_negative_length_is_rejected():
    framer = LengthFramer("l", 0, 4)
    with pytest.raises(FramingError, match="negative"):
        framer.feed(struct.pack("=i", -5))


def test_eof_without_terminator_over_max_is_rejected():
    framer = EofFramer(b"\r\n", split=True, max_length=10)
    with pytest.raises(FramingError):
        framer.feed(b"x" * 11)


def test_length_func_decides_packet_size():
    framer = LengthFramer(length_func=lambda data: 0 if len(data) < 1 else 1 + data[0])
    assert framer.feed(b"\x03ab") == []
    assert framer.feed(b"c\x01z") == [b"\x03abc", b"\x01z"]
    bad = LengthFramer(length_func=lambda data: -1)
    with pytest.raises(FramingError):
        bad.feed(b"x")


def test_make_framer_from_settings():
    assert make_framer({}) is None
    assert isinstance(make_framer({"open_eof_split": True, "package_eof": "\n"}), EofFramer)
    framer = make_framer({"open_length_check": True, "package_length_type": "n", "package_body_offset": 2})
    assert framer.feed(b"\x00\x02hi\x00") == [b"\x00\x02hi"]


def test_unknown_length_type():
    with pytest.raises(ValueError, match="package_length_type"):
        LengthFramer("x")
