"""The HTTP server with real clients (httpx, curl, raw sockets) against a real server process."""

from __future__ import annotations

import gzip
import json
import shutil
import socket
import subprocess
import time

import httpx
import pytest
from helpers import recv_until, wait_for
from http_support import HttpServer, read_response, read_to_close, split_responses

SETTINGS = {
    "package_max_length": 1024 * 1024,
    "http_max_header_size": 4096,
    "http_header_timeout": 1.0,
    "buffer_output_size": 512 * 1024,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("http")
    upload_dir = workdir / "uploads"
    upload_dir.mkdir()
    srv = HttpServer(workdir, {**SETTINGS, "upload_tmp_dir": str(upload_dir)})
    srv.upload_dir = upload_dir
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url(""), timeout=5) as c:
        yield c


def test_hello_has_server_date_and_content_headers(client):
    r = client.get("/hello")
    assert r.status_code == 200
    assert r.text == "Hello, World!"
    assert r.headers["server"] == "pyswoole"
    assert r.headers["content-type"] == "text/plain"
    assert r.headers["content-length"] == "13"
    assert r.headers["date"].endswith(" GMT")


def test_request_properties(client, server):
    r = client.post(
        "/echo?a=1&b=two",
        data={"x": "1", "y": "é"},
        headers={"X-Custom": "Value", "Cookie": "sid=abc; theme=dark"},
    )
    info = r.json()
    assert info["header"]["x-custom"] == "Value"
    assert info["get"] == {"a": "1", "b": "two"}
    assert info["post"] == {"x": "1", "y": "é"}
    assert info["cookie"] == {"sid": "abc", "theme": "dark"}
    assert info["method"] == "POST"
    srv = info["server"]
    assert srv["request_uri"] == "/echo" and srv["path_info"] == "/echo"
    assert srv["query_string"] == "a=1&b=two"
    assert srv["request_method"] == "POST"
    assert srv["server_protocol"] == "HTTP/1.1"
    assert srv["server_port"] == server.port
    assert srv["remote_addr"] == "127.0.0.1" and srv["remote_port"] > 0
    assert abs(srv["request_time_float"] - time.time()) < 30
    plain = client.get("/echo").json()
    assert plain["get"] is None and plain["post"] is None and plain["cookie"] is None


def test_default_content_type_is_text_html_and_unknown_route_404(client):
    r = client.get("/nothing-here")
    assert r.status_code == 404
    assert r.headers["content-type"] == "text/html"


def test_keep_alive_reuses_one_connection(server):
    with server.connect() as sock:
        fds = set()
        for _ in range(3):
            sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = read_response(sock)
            assert status == b"HTTP/1.1 200 OK"
            assert "connection" not in headers
            fds.add(json.loads(body)["fd"])
        assert len(fds) == 1


def test_pipelined_requests_are_answered_in_order_even_when_the_first_suspends(server):
    with server.connect() as sock:
        sock.sendall(
            b"GET /sleep?s=0.2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /sleep?s=0.01 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        data = recv_until(sock, lambda d: len(split_responses(d)) == 4 and d.endswith(b"Hello, World!"))
    bodies = [body for _, body in split_responses(data)]
    assert bodies == [b"slept 0.2", b"Hello, World!", b"slept 0.01", b"Hello, World!"]


def test_http10_closes_unless_keep_alive_is_asked(server):
    data = server.raw(b"GET /hello HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK") and b"Connection: close\r\n" in data
    assert data.endswith(b"Hello, World!")
    with server.connect() as sock:
        sock.sendall(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        _, headers, body = read_response(sock)
        assert headers["connection"] == "keep-alive" and body == b"Hello, World!"
        sock.sendall(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert read_response(sock)[2] == b"Hello, World!"


def test_connection_close_from_the_client_is_honoured(server):
    data = server.raw(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Connection: close" in data and data.endswith(b"Hello, World!")


def test_expect_100_continue(server):
    with server.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = recv_until(sock, lambda d: b"\r\n\r\n" in d)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        _, _, body = read_response(sock)
        assert json.loads(body)["body"] == "hello"


def test_chunked_request_body(server):
    with server.connect() as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        _, _, body = read_response(sock)
    assert json.loads(body)["body"] == "hello world"


def test_head_has_length_but_no_body(server):
    with server.connect() as sock:
        sock.sendall(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until(sock, lambda d: d.endswith(b"Hello, World!"))
    first, second = data.split(b"\r\n\r\n", 1)
    assert b"Content-Length: 13" in first
    assert second.startswith(b"HTTP/1.1 200 OK")


def test_handler_is_a_coroutine_with_cid_and_defers_whether_or_not_it_suspends(client):
    first = client.get("/coroutine").json()
    assert first["cid"] > 0 and first["after"] == first["cid"]
    slept = client.get("/coroutine?sleep=1").json()
    assert slept["cid"] > 0 and slept["after"] == slept["cid"] != first["cid"]
    assert first["cid"] in slept["deferred"]  # the defer of the first handler ran
    r = client.get("/coroutine?raise=1")
    assert r.status_code == 500 and r.text == "Internal Server Error"
    assert slept["cid"] in client.get("/coroutine").json()["deferred"]


def test_handler_exception_gives_500_and_the_worker_keeps_serving(client, server):
    r = client.get("/raise")
    assert r.status_code == 500
    assert "x-before" not in r.headers
    assert client.get("/hello").text == "Hello, World!"
    assert "handler failure for the test" in server.process.output()


def test_handler_without_end_is_ended_automatically(client):
    r = client.get("/noend")
    assert r.status_code == 201 and r.content == b""


def test_streaming_write_uses_chunked_encoding(client, server):
    r = client.get("/stream")
    assert r.text == "part0;part1;part2;"
    assert r.headers["transfer-encoding"] == "chunked"
    data = server.raw(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.endswith(b"6\r\npart2;\r\n0\r\n\r\n")


def test_cookies_redirect_and_custom_status(client):
    r = client.get("/cookie")
    cookies = r.headers.get_list("set-cookie")
    assert "a=b%20c; path=/; HttpOnly" in cookies
    assert "raw=x%20y; path=/" in cookies
    r = client.get("/redirect", follow_redirects=False)
    assert r.status_code == 301 and r.headers["location"] == "/hello"
    r = client.get("/status?code=299&reason=Fine%20Thanks")
    assert r.status_code == 299 and r.reason_phrase == "Fine Thanks"
    assert client.get("/status?code=204").content == b""


def test_detached_response_is_finished_later_from_another_coroutine(client):
    r = client.get("/detach")
    assert r.status_code == 200 and r.text == "late reply"


def test_compression_gzip_and_brotli_when_accepted(server):
    with httpx.Client(timeout=5) as c:
        r = c.get(server.url("/big?n=5000"), headers={"Accept-Encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip"
        assert int(r.headers["content-length"]) < 200
        assert r.text == "x" * 5000
        r = c.get(server.url("/big?n=5000"), headers={"Accept-Encoding": "br"})
        assert r.headers["content-encoding"] == "br"
        r = c.get(server.url("/big?n=5000"), headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in r.headers and len(r.content) == 5000
        r = c.get(server.url("/hello"), headers={"Accept-Encoding": "gzip"})  # under the minimum length
        assert "content-encoding" not in r.headers
    with server.connect() as sock:
        sock.sendall(b"GET /big?n=100 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip;q=1, br;q=0\r\n\r\n")
        _, headers, body = read_response(sock)
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == b"x" * 100


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_get_and_post(server):
    out = subprocess.run(
        ["curl", "-s", "-d", "k=v", server.url("/echo?q=1")], capture_output=True, timeout=10, check=True
    )
    info = json.loads(out.stdout)
    assert info["post"] == {"k": "v"} and info["get"] == {"q": "1"}


# -- bad input: each case on a raw socket ------------------------------------------------------------
def test_malformed_request_gets_400_and_close(server):
    data = server.raw(b"GET / HTTP/1.1\r\nHost : bad\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 Bad Request") and b"Connection: close" in data
    assert server.raw(b"\x16\x03\x01\x02\x00garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_header_section_too_large_gets_431(server):
    data = server.raw(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 431 ")
    data = server.raw(b"GET /" + b"u" * 5000 + b" HTTP/1.1\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 431 ")


def test_body_over_package_max_length_gets_413_before_it_is_sent(server):
    with server.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
        data = read_to_close(sock)  # answered without a single body byte sent
    assert data.startswith(b"HTTP/1.1 413 ")
    with server.connect() as sock:  # chunked: refused once the received bytes pass the limit
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
        try:
            for _ in range(40):
                sock.sendall(chunk)
        except OSError:
            pass
        data = read_to_close(sock)
    assert data.startswith(b"HTTP/1.1 413 ")


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        b"Content-Length: 5\r\nContent-Length: 5\r\n",
        b"Content-Length: 5\r\nContent-Length: 6\r\n",
        b"Transfer-Encoding: chunked, identity\r\n",
    ],
    ids=["cl-te", "te-cl", "dup-cl", "conflicting-cl", "te-not-last-chunked"],
)
def test_request_smuggling_vectors_get_400(server, head):
    data = server.raw(
        b"POST /echo HTTP/1.1\r\nHost: x\r\n" + head + b"\r\nhello0\r\n\r\nGET /hello HTTP/1.1\r\n\r\n"
    )
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b"Hello, World!" not in data


def test_slowloris_head_is_cut_after_the_header_timeout(server):
    with server.connect(timeout=10) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        for _ in range(8):  # one header line every 0.4 s: never finishes
            time.sleep(0.4)
            try:
                sock.sendall(b"X-A: b\r\n")
            except OSError:
                break
        data = read_to_close(sock, 5)
        assert data.startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - start < 4.5
    with server.connect(timeout=10) as sock:  # connected, silent
        start = time.monotonic()
        assert read_to_close(sock, 5) == b""
        assert 0.9 < time.monotonic() - start < 4.5


def test_client_that_stops_reading_is_disconnected(server, client):
    with server.connect(timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        request = b"GET /big?n=200000 HTTP/1.1\r\nHost: x\r\n\r\n"
        sent = 0
        closed = False
        deadline = time.monotonic() + 8
        sock.settimeout(0.5)
        while time.monotonic() < deadline:  # write requests, never read a byte
            try:
                sock.sendall(request * 8)
                sent += 8
            except (TimeoutError, OSError) as exc:
                closed = not isinstance(exc, TimeoutError)
                if closed:
                    break
        assert closed or "client does not read" in server.process.output()
    wait_for(lambda: "client does not read" in server.process.output(), 5)
    assert client.get("/hello").text == "Hello, World!"


def test_requests_split_anywhere_get_the_same_answers(server):
    import random

    stream = (
        b"POST /echo?a=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 7\r\n\r\nk=v&w=z"
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
    )

    def answers(pieces: list[bytes]) -> list[tuple[bytes, object]]:
        with server.connect() as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for piece in pieces:
                sock.sendall(piece)
                time.sleep(0.0005)
            data = recv_until(sock, lambda d: d.endswith(b"Hello, World!"))
        out = []
        for status, body in split_responses(data):
            if body.startswith(b"{"):
                info = json.loads(body)
                body = (info["get"], info["post"], info["body"])
            out.append((status, body))
        return out

    whole = answers([stream])
    assert [b for _, b in whole] == [
        ({"a": "1"}, {"k": "v", "w": "z"}, "k=v&w=z"),
        (None, None, "abcde"),
        b"Hello, World!",
    ]
    assert answers([stream[i : i + 1] for i in range(len(stream))]) == whole
    rng = random.Random(4)
    for _ in range(3):
        cuts = sorted(rng.sample(range(1, len(stream)), 12))
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert answers(pieces) == whole


def test_response_headers_refuse_crlf_and_colons():
    from pyswoole.http import Response

    response = Response(None, None)
    response.header("x-custom", "fine")
    assert response.headers == {"X-Custom": "X-Custom: fine\r\n"}
    for name, value, fmt in [
        ("X-A", "b\r\nSet-Cookie: x=y", True),
        ("X-A\r\n", "b", True),
        ("X:A", "b", True),
        ("X:A", "b", False),
    ]:
        with pytest.raises(ValueError):
            response.header(name, value, fmt)


class CapturingConnection:
    """What ``Response.end()`` needs of a connection: its options, and ``finish_response``."""

    def __init__(self, compression: bool = False):
        from pyswoole.http import Server

        server = Server("127.0.0.1", 0)
        server.set({"http_compression": compression, "compression_min_length": 1})
        server.on("request", lambda request, response: None)
        self.options = server.http_options(server.ports[0])
        self.sent: list[bytes] = []

    def finish_response(self, response, payload: bytes) -> bool:
        self.sent.append(payload)
        return True


@pytest.mark.parametrize("body", ["Hello, World!", b"bytes", "\u00e9t\u00e9 \u2603" * 10, "", b""])
@pytest.mark.parametrize("value", ["text/plain", "text/plain; charset=\u00e9"])
@pytest.mark.parametrize("compression", [False, True])
def test_response_common_case_in_c_gives_the_bytes_of_the_python_implementation(body, value, compression):
    from pyswoole.http import Request, Response
    from pyswoole.http.response import DATE, ENDED

    line, raw = DATE.line, DATE.raw  # one Date for both (the clock may tick between them)
    try:
        for accept in [(), [(b"Accept-Encoding", b"gzip")]]:
            request = Request()  # GET, HTTP/1.1, keep-alive: the case ResponseCore answers itself
            request.headers = accept
            fast, slow = CapturingConnection(compression), CapturingConnection(compression)
            responses = Response(fast, request), Response(slow, request)
            for response in responses:
                response.header("content-type", value)
                response.header("X-Count", 3)  # not a str: the Python implementation's
            responses[0].header("X-Last", "1")
            responses[1]._set_header("X-Last", "1")
            assert responses[0].headers == responses[1].headers
            assert responses[0].end(body) and responses[1]._end(body)
            assert fast.sent == slow.sent and len(fast.sent) == 1
            assert fast.sent[0].startswith(b"HTTP/1.1 200 OK\r\n")
            assert (b"Content-Encoding: gzip\r\n" in fast.sent[0]) == bool(compression and accept and body)
            assert all(response.state == ENDED for response in responses)
            assert not responses[0].end("again") and not responses[0].header("X-Late", "1")
    finally:
        DATE.line, DATE.raw = line, raw


@pytest.mark.parametrize("count", [1, 4, 7])
def test_headers_kept_in_place_give_the_bytes_and_dict_of_the_python_implementation(count):
    """ResponseCore keeps its first headers without a dict (made when ``headers`` is read or more
    arrive) and reuses the line of a (name, value) pair it made lately: neither may change what
    is sent, replacing a header included."""
    from pyswoole.http import Request, Response
    from pyswoole.http.response import DATE

    line, raw = DATE.line, DATE.raw
    try:
        names = [f"x-h{i}" for i in range(count)]
        sent = []
        for rep in range(2):  # the second time, every line comes from the cache
            request = Request()
            fast, slow = CapturingConnection(), CapturingConnection()
            responses = Response(fast, request), Response(slow, request)
            responses[0].header("Content-Type", "text/plain")
            responses[1]._set_header("Content-Type", "text/plain")
            for name in names:
                responses[0].header(name, "v")
                responses[1]._set_header(name, "v")
            responses[0].header("x-h0", "replaced")  # replaces in place, keeps its position
            responses[1]._set_header("x-h0", "replaced")
            if rep:
                assert responses[0].headers == responses[1].headers  # made from the kept lines
                responses[0].header("X-After", "1")
                responses[1]._set_header("X-After", "1")
            assert responses[0].end("body") and responses[1]._end("body")
            assert fast.sent == slow.sent
            assert fast.sent[0].count(b"X-H0: ") == 1 and b"X-H0: replaced\r\n" in fast.sent[0]
            sent.append(fast.sent[0])
        assert b"X-After" not in sent[0] and b"X-After: 1\r\n" in sent[1]
        cleared = Response(CapturingConnection(), Request())
        cleared.header("X-Gone", "1")
        cleared.headers = None
        assert cleared.headers is None
        cleared.end("x")  # no Content-Type left: the Python implementation's default
        assert b"X-Gone" not in cleared.conn.sent[0] and b"Content-Type: text/html" in cleared.conn.sent[0]
    finally:
        DATE.line, DATE.raw = line, raw


def test_process_mode_reload_hands_idle_connections_over(tmp_path):
    import signal

    srv = HttpServer(tmp_path, {"max_wait_time": 1.0}, mode="process").start()
    try:
        with srv.connect() as idle, srv.connect() as partial:
            idle.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
            old_pid = int(read_response(idle)[2])
            partial.sendall(b"GET /hello HTTP/1.1\r\nHost")  # a head in progress
            time.sleep(0.2)
            srv.process.signal(signal.SIGUSR1)

            def new_worker() -> bool:
                try:
                    return int(httpx.get(srv.url("/pid"), timeout=2).text) != old_pid
                except httpx.HTTPError:
                    return False

            wait_for(new_worker, 15, message="no new worker after reload")
            idle.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")  # same connection, next worker
            assert int(read_response(idle)[2]) != old_pid
            assert read_to_close(partial) == b""  # could not move: closed, nothing half-sent
    finally:
        srv.stop()


def test_max_request_recycles_the_worker_after_that_many_requests(tmp_path):
    """Requests are counted per read by the C path; at max_request the worker finishes the
    answers of that read, stops gracefully and a fresh one serves the next connection."""
    srv = HttpServer(tmp_path, {"max_request": 3, "max_request_grace": 0}).start()
    try:
        with httpx.Client(base_url=srv.url(""), timeout=5) as client:
            first = {client.get("/pid").text for _ in range(3)}
            assert len(first) == 1
        pids = set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not pids - first:
            with httpx.Client(base_url=srv.url(""), timeout=5) as client:
                try:
                    pids.add(client.get("/pid").text)
                except httpx.HTTPError:
                    time.sleep(0.05)
        assert pids - first, "the worker was not replaced after max_request requests"
    finally:
        srv.stop()
