"""RESP sans-IO: the request parser, the reply encoder and ``Server.format``, without sockets."""

from __future__ import annotations

import re

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswoole.protocol.resp import ProtocolError, Reply, ReplyError, RequestParser, encode, split_inline
from pyswoole.redis import ERROR, INT, MAP, NIL, SET, STATUS, STRING, Server


def multibulk(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def parse_all(chunks: list[bytes], parser: RequestParser | None = None) -> list[list[bytes]]:
    parser = parser or RequestParser()
    commands = []
    for chunk in chunks:
        commands += parser.feed(chunk)
    return commands


def decode_reply(data: bytes, protocol: int = 2):
    reader = hiredis.Reader(protocolError=ValueError, replyError=ValueError)
    reader.feed(data)
    return reader.gets()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(st.binary(max_size=40), min_size=1, max_size=5), min_size=1, max_size=20),
    st.lists(st.integers(min_value=0, max_value=4000), max_size=30),
)
def test_pipelined_commands_survive_any_split(commands, cuts):
    stream = b"".join(multibulk(*c) for c in commands)
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True) if b > a]
    assert parse_all(chunks) == commands


def test_inline_commands_then_multibulk_across_reads():
    parser = RequestParser()
    assert parser.feed(b"PING\r\n") == [[b"PING"]]
    assert parser.feed(b"set a 'it\\'s' \"x\\ty\\x41\"\r\nGE") == [[b"set", b"a", b"it's", b"x\tyA"]]
    assert parser.feed(b"T a\n\r\n   \r\n" + multibulk(b"GET", b"b")[:3]) == [[b"GET", b"a"]]
    assert parser.feed(multibulk(b"GET", b"b")[3:] + b"*0\r\n*-1\r\n") == [[b"GET", b"b"]]
    with pytest.raises(ProtocolError):  # multibulk for good once it started
        parser.feed(b"PING\r\n")


def test_split_inline_quotes_like_redis():
    assert split_inline(b"  a \"b c\"   'd e'") == [b"a", b"b c", b"d e"]
    assert split_inline(b'"\\n\\r\\\\\\"\\x4a\\xzz"') == [b'\n\r\\"Jxzz']
    for bad in (b'"open', b"'open", b'"a"b', b"'a'b"):
        with pytest.raises(ProtocolError, match="unbalanced quotes"):
            split_inline(bad)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*1\r\n:5\r\n", "expected '$', got ':'"),
        (b"*1\r\n*1\r\n$1\r\na\r\n", "expected '$', got '*'"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        (b"*x\r\n", "invalid multibulk length"),
        (b"*1\r\n$-5\r\n", "invalid bulk length"),
        (b"*1\r\n$x\r\n", "invalid bulk length"),
        (b"x" * 70_000, "too big inline request"),
        (b'GET "a\r\n', "unbalanced quotes"),
    ],
)
def test_malformed_requests(data, message):
    with pytest.raises(ProtocolError, match=re.escape(message)) as info:
        RequestParser().feed(data)
    assert str(info.value).startswith("Protocol error: ")


def test_error_keeps_the_commands_before_it():
    parser = RequestParser()
    with pytest.raises(ProtocolError) as info:
        parser.feed(multibulk(b"PING") + multibulk(b"ECHO", b"x") + b"*1\r\n:1\r\n")
    assert info.value.commands == [[b"PING"], [b"ECHO", b"x"]]


def test_request_bigger_than_max_length_is_refused_before_it_is_buffered():
    parser = RequestParser(max_length=1000)
    assert parser.feed(b"*2\r\n$3\r\nSET\r\n$100000000\r\n") == []
    with pytest.raises(ProtocolError, match="package_max_length"):
        for _ in range(100):
            parser.feed(b"x" * 4096)
    ok = RequestParser(max_length=1000)
    assert ok.feed(multibulk(b"SET", b"x" * 1000)) == [[b"SET", b"x" * 1000]]


VALUES = [
    None,
    0,
    -7,
    2**63 - 1,
    b"",
    b"a\r\nb",
    "héllo",
    [1, b"x", None, [b"nested"]],
    (b"t",),
    {b"k": b"v", b"n": 1},
    1.5,
]


@pytest.mark.parametrize("value", VALUES)
def test_encode_decodes_back_with_hiredis(value):
    def plain(v):
        if isinstance(v, str):
            return v.encode()
        if isinstance(v, tuple | list):
            return [plain(i) for i in v]
        if isinstance(v, dict):
            return [x for k, i in v.items() for x in (plain(k), plain(i))]
        if isinstance(v, float):
            return repr(v).encode()
        return v

    assert decode_reply(encode(value)) == plain(value)


def test_encode_resp3_types():
    assert encode(None, True) == b"_\r\n"
    assert encode(True, True) == b"#t\r\n" and encode(False) == b":0\r\n"
    assert encode({b"a": 1}, True) == b"%1\r\n$1\r\na\r\n:1\r\n"
    assert encode({b"a"}, True) == b"~1\r\n$1\r\na\r\n"
    assert encode(2.5, True) == b",2.5\r\n"
    assert encode(Reply(b"+QUEUED\r\n")) == b"+QUEUED\r\n"
    assert encode([Reply(b"+OK\r\n"), 1]) == b"*2\r\n+OK\r\n:1\r\n"


def test_encode_errors():
    assert encode(ValueError("bad\r\nthing")) == b"-ERR bad  thing\r\n"
    assert encode(ReplyError("WRONGTYPE Operation")) == b"-WRONGTYPE Operation\r\n"
    assert encode(KeyError()) == b"-ERR KeyError\r\n"
    with pytest.raises(TypeError, match="cannot encode object"):
        encode(object())


def test_format_uses_swooles_wire_encodings():
    assert Server.format(NIL) == b"$-1\r\n"
    assert Server.format(ERROR) == b"-ERR\r\n"
    assert Server.format(ERROR, "WRONGTYPE bad") == b"-WRONGTYPE bad\r\n"
    assert Server.format(STATUS) == b"+OK\r\n"
    assert Server.format(STATUS, "PONG") == b"+PONG\r\n"
    assert Server.format(INT, 42) == b":42\r\n"
    assert Server.format(STRING, "OK") == b"$2\r\nOK\r\n"
    assert Server.format(STRING, "") == b"$0\r\n\r\n"
    assert Server.format(STRING, None) == b"$-1\r\n"  # Swoole sends nothing here: the nil fix
    assert Server.format(SET, ["a", 1]) == b"*2\r\n$1\r\na\r\n$1\r\n1\r\n"
    assert Server.format(MAP, {"a": "b"}) == b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    assert Server.format(SET, ["a"], resp=3) == b"~1\r\n$1\r\na\r\n"
    assert Server.format(MAP, {"a": 1}, resp=3) == b"%1\r\n$1\r\na\r\n$1\r\n1\r\n"
    assert Server.format(NIL, resp=3) == b"_\r\n"
    assert type(Server.format(STATUS, "x")) is Reply
    with pytest.raises(ValueError, match="unknown reply type"):
        Server.format(99)
    with pytest.raises(TypeError):
        Server.format(MAP, ["not", "a", "map"])


def test_set_handler_checks_names_and_arity():
    server = Server("127.0.0.1", 0)
    server.set_handler("get", lambda s, fd, args: None)
    assert server.get_handler("GET") is server.get_handler("Get")
    with pytest.raises(ValueError, match="command name"):
        server.set_handler("two words", lambda s, fd, args: None)
    with pytest.raises(TypeError, match="3 positional"):
        server.set_handler("X", lambda fd, args: None)
    with pytest.raises(ValueError, match="set_handler"):
        server.on("receive", lambda *a: None)


def test_blank_lines_between_requests_are_skipped_wherever_reads_split():
    """redis-cli --pipe ends with "\\r\\n" + ECHO: Redis skips the empty line, so must we."""
    stream = b"".join(multibulk(b"SET", b"k%d" % i, b"v" * i) for i in range(12))
    tail = b"\r\n\n" + multibulk(b"ECHO", b"magic")
    for cut in range(1, len(stream)):
        parser = RequestParser()
        commands = parser.feed(stream[:cut]) + parser.feed(stream[cut:] + tail)
        assert len(commands) == 13 and commands[-1] == [b"ECHO", b"magic"], cut
        assert parser.take_buffer() == b""
    parser = RequestParser()
    assert parser.feed(stream) + parser.feed(b"\r\n") + parser.feed(tail) == parse_all([stream, tail[3:]])
    with pytest.raises(ProtocolError):  # where a request is under way a CR is no blank line
        RequestParser().feed(b"*2\r\n$3\r\nSET\r\n\r\n$1\r\na\r\n")
