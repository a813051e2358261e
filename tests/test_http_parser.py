"""The sans-IO request parser: a corpus replayed whole, byte by byte and in random chunks parses
identically; limits and malformed input raise the status to answer."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyswoole.http.parser import RequestParser
from pyswoole.protocol.http import HttpError, header_line, status_line

CORPUS = [
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"GET /path/to?x=1&y=%20z HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nUser-Agent: curl/8\r\n\r\n",
    b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 11\r\n\r\na=1&b=hello",
    b"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n",
    b"GET /old-ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"HEAD /h HTTP/1.1\r\nHost: a\r\nX-Repeated: 1\r\nX-Repeated: 2\r\n\r\n",
    b"PUT /bin HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n\x00\xff\r\n",
    b"DELETE /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Spaces:   padded   \r\n\r\n",
]
STREAM = b"".join(CORPUS)


def parse(chunks: list[bytes]) -> list[tuple]:
    parser = RequestParser()
    out = []
    for chunk in chunks:
        for r in parser.feed(chunk):
            out.append((r.method, r.url, r.version, r.keep_alive, tuple(r.headers), r.body))
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for p in points:
        pieces.append(data[start:p])
        start = p
    pieces.append(data[start:])
    return pieces


EXPECTED = parse([STREAM])


def test_corpus_whole_gives_every_request():
    assert len(EXPECTED) == len(CORPUS)
    methods = [r[0] for r in EXPECTED]
    assert methods == [b"GET", b"GET", b"POST", b"POST", b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS"]
    assert EXPECTED[1][1] == b"/path/to?x=1&y=%20z"
    assert EXPECTED[2][5] == b"a=1&b=hello"
    assert EXPECTED[3][5] == b"Wikipedia in\r\n\r\nchunks."
    assert EXPECTED[4][2:4] == ("1.0", True)
    assert EXPECTED[5][4][1:] == ((b"X-Repeated", b"1"), (b"X-Repeated", b"2"))
    assert EXPECTED[6][5] == b"\x00\xff\r\n"
    assert EXPECTED[7][3] is True
    assert (b"X-Spaces", b"padded   ") in EXPECTED[8][
        4
    ]  # llhttp keeps trailing spaces; Request.header strips


def test_corpus_byte_by_byte_parses_identically():
    assert parse([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


@pytest.mark.parametrize("seed", range(20))
def test_corpus_in_random_chunks_parses_identically(seed):
    rng = random.Random(seed)
    cuts = [rng.randrange(len(STREAM)) for _ in range(rng.randrange(1, 60))]
    assert parse(split_at(STREAM, cuts)) == EXPECTED


def test_headers_read_while_the_body_arrives_still_get_the_trailers():
    """Header lines stay bytes until asked for; asked for at the head (as the server's body checks
    do), the trailers that follow the body are added to the same list."""
    seen = []

    def on_head(request):
        seen.append(list(request.headers))

    parser = RequestParser(on_head=on_head)
    (request,) = parser.feed(CORPUS[3])
    assert seen == [[(b"Host", b"a"), (b"Transfer-Encoding", b"chunked")]]
    assert request.headers == [(b"Host", b"a"), (b"Transfer-Encoding", b"chunked"), (b"Trailer", b"x")]
    (untouched,) = RequestParser().feed(CORPUS[3])
    assert untouched.headers == request.headers
    untouched.headers = [(b"X", b"1")]  # the application may replace them
    assert untouched.headers == [(b"X", b"1")]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_corpus_any_split_parses_identically(cuts):
    assert parse(split_at(STREAM, cuts)) == EXPECTED


@pytest.mark.parametrize(
    "last", [b"GET /old HTTP/1.0\r\n\r\n", b"DELETE /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"]
)
def test_bytes_after_a_closing_request_are_ignored(last):
    parser = RequestParser()
    requests = parser.feed(STREAM + last + b"GET /after HTTP/1.1\r\n\r\n")
    assert [r.url for r in requests][-1] == last.split()[1]
    assert requests[-1].keep_alive is False
    assert parser.feed(b"GET /more HTTP/1.1\r\n\r\n") == []


def test_error_after_complete_requests_comes_after_them():
    parser = RequestParser()
    requests = parser.feed(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nBad Header\r\n\r\n")
    assert [r.url for r in requests] == [b"/a"]
    assert parser.error is not None and parser.error.status == 400
    with pytest.raises(HttpError):
        parser.feed(b"GET /c HTTP/1.1\r\n\r\n")


def test_each_request_alone_parses_like_in_the_stream():
    assert [parse([raw])[0] for raw in CORPUS] == EXPECTED


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\n\r\n", 400),
        (b"\x00\x01\x02 / HTTP/1.1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 2000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\nContent-Length: 200\r\n\r\n" + b"b" * 200, 413),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n80\r\n" + b"c" * 128 + b"\r\n", 413),
    ],
)
def test_bad_input_raises_the_status_to_answer(data, status):
    parser = RequestParser(max_header_size=1024, max_body_size=100)
    with pytest.raises(HttpError) as info:
        parser.feed(data)
    assert info.value.status == status


def test_head_limit_counts_across_byte_by_byte_feeding():
    parser = RequestParser(max_header_size=64)
    data = b"GET / HTTP/1.1\r\nX-Long: " + b"v" * 100 + b"\r\n\r\n"
    with pytest.raises(HttpError) as info:
        for i in range(len(data)):
            parser.feed(data[i : i + 1])
    assert info.value.status == 431


def test_upgrade_stops_the_parser_and_keeps_the_rest():
    parser = RequestParser()
    requests = parser.feed(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00")
    assert [r.upgrade for r in requests] == [True]
    assert parser.upgrade_data == b"\x81\x00"
    assert parser.feed(b"more") == []
    assert parser.upgrade_data == b"\x81\x00more"


def test_response_head_helpers_refuse_splitting():
    assert status_line(200) == "HTTP/1.1 200 OK\r\n"
    assert status_line(599) == "HTTP/1.1 599 Unknown\r\n"
    assert status_line(200, "Fine") == "HTTP/1.1 200 Fine\r\n"
    assert header_line("X-A", "b") == "X-A: b\r\n"
    for bad in [("X-A", "b\r\nSet-Cookie: x=y"), ("X-A\r\n", "b"), ("X:A", "b")]:
        with pytest.raises(ValueError):
            header_line(*bad)
    with pytest.raises(ValueError):
        status_line(200, "OK\r\nX: y")


class HttptoolsReference:
    """httptools (the same llhttp, driven from Python): what the C driver must agree with."""

    def __init__(self) -> None:
        import httptools

        self.parser = httptools.HttpRequestParser(self)
        self.requests: list[tuple] = []
        self.url, self.headers, self.body = b"", [], b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        p = self.parser
        request = (p.get_method(), self.url, p.get_http_version(), p.should_keep_alive())
        self.requests.append((*request, tuple(self.headers), self.body))
        self.url, self.headers, self.body = b"", [], b""


REFUSED = [
    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost : b\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: 1\r\n continued\r\n\r\n",
    b"GET / HTTP/1.1\nHost: x\n\n",
    b"get / HTTP/1.1\r\n\r\n",
    b"GET /\x7f HTTP/1.1\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
]


@pytest.mark.parametrize(
    ("data", "refused"),
    [*((d, False) for d in [*CORPUS, STREAM, b"GET  / HTTP/1.1\r\n\r\n"]), *((d, True) for d in REFUSED)],
)
def test_the_c_driver_agrees_with_httptools(data, refused):
    """Same requests, and the same refusals (the request-smuggling vectors among them)."""
    import httptools

    reference = HttptoolsReference()
    try:
        reference.parser.feed_data(data)
    except httptools.HttpParserError:
        assert refused
        parser = RequestParser()
        with pytest.raises(HttpError) as info:
            parser.feed(data)
            parser.feed(b"")  # an error found after complete requests comes with the next feed
        assert info.value.status == 400
    else:
        assert not refused
        assert parse([data]) == reference.requests
