"""examples/http.py (port of http.php) and examples/co_chan.py run for real."""

from __future__ import annotations

import re
import time

import httpx
from helpers import EXAMPLES, free_port, port_open


def test_http_example_routes(run_server):
    port = free_port()
    server = run_server(
        [EXAMPLES / "http.py", "--host", "127.0.0.1", "--port", port], ready=lambda: port_open(port)
    )
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
        r = c.get("/test/index?a=1")
        assert r.status_code == 200 and re.fullmatch(r"<h1>test/index #\d{4}</h1>", r.text)
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert 1000 <= int(r.text[-9:-5]) <= 9999
        assert re.fullmatch(r"<h1>test/say #\d{4}</h1>", c.get("/test/say").text)
        assert re.fullmatch(r"<h1>test/index #\d{4}</h1>", c.get("/TEST/INDEX/extra").text)
        r = c.get("/favicon.ico")
        assert r.status_code == 404 and r.content == b""
        for path in ["/", "/test", "/ArrayObject/count", "/test/nothing"]:
            assert c.get(path).status_code == 404
        assert c.get("/test/say").status_code == 200  # still serving
    output = server.wait_output("{'a': '1'} None")
    assert "test index" in output and "TEST INDEX" in output


class _Upstream:
    """A local upstream answering ``status`` after ``delay`` seconds (in a thread)."""

    def __init__(self, status: int, delay: float):
        import http.server
        import threading

        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.headers.append(dict(self.headers))
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.headers: list[dict] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_co_chan_example_two_concurrent_upstreams(run_server):
    slow, fast = _Upstream(200, 0.8), _Upstream(301, 0.4)
    refusing_port = free_port()
    try:
        port = free_port()
        argv = [EXAMPLES / "co_chan.py", "--host", "127.0.0.1", "--port", port]
        argv += [
            "--upstream",
            f"http://127.0.0.1:{slow.port}/",
            "--upstream",
            f"http://localhost:{fast.port}/",
        ]
        run_server(argv, ready=lambda: port_open(port))
        start = time.monotonic()
        r = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        elapsed = time.monotonic() - start
        assert r.headers["content-type"] == "text/html"
        assert list(r.json().items()) == [("localhost", 301), ("127.0.0.1", 200)]  # completion order
        assert elapsed < 1.15, f"the upstream calls took {elapsed:.2f} s: not concurrent"
        assert slow.headers[0]["User-Agent"] == "Chrome/49.0.2587.3"
        assert slow.headers[0]["Accept-Encoding"] == "gzip"

        port2 = free_port()
        argv = [EXAMPLES / "co_chan.py", "--host", "127.0.0.1", "--port", port2]
        argv += [
            "--upstream",
            f"http://127.0.0.1:{refusing_port}/",
            "--upstream",
            f"http://localhost:{fast.port}/x",
        ]
        run_server(argv, ready=lambda: port_open(port2))
        assert httpx.get(f"http://127.0.0.1:{port2}/", timeout=10).json() == {
            "127.0.0.1": -1,
            "localhost": 301,
        }
    finally:
        slow.close()
        fast.close()
