"""examples/http.py (port of http.php) and examples/co_chan.py run for real."""

from __future__ import annotations

import re

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
