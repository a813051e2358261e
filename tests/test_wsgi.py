"""``pyswoole serve --interface wsgi`` with a real Flask application."""

from __future__ import annotations

import hashlib
import os
import textwrap

import httpx
from helpers import free_port, port_open

FLASK_APP = textwrap.dedent(
    """
    import hashlib, threading, time
    from flask import Flask, Response, jsonify, request, stream_with_context

    app = Flask(__name__)

    @app.get("/hello/<name>")
    def hello(name):
        return f"Hello, {name}!"

    @app.post("/form")
    def form():
        return jsonify(form=request.form.to_dict(), args=request.args.to_dict(),
                       ua=request.headers.get("User-Agent"), path=request.path)

    @app.post("/upload")
    def upload():
        data = request.files["file"].read()
        return jsonify(name=request.files["file"].filename, sha=hashlib.sha256(data).hexdigest())

    @app.get("/big")
    def big():
        def chunks():
            for i in range(64):
                yield bytes([65 + i % 26]) * 16384
        return Response(stream_with_context(chunks()), mimetype="application/octet-stream")

    @app.get("/slow")
    def slow():
        time.sleep(0.5)  # blocking: runs in a pool thread, not on the event loop
        return threading.current_thread().name

    @app.get("/cookie")
    def cookie():
        response = jsonify(ok=True)
        response.set_cookie("k", "v")
        return response

    @app.get("/fail")
    def fail():
        raise RuntimeError("flask failure for the test")
    """
)


def test_flask_app(run_server, tmp_path):
    (tmp_path / "flask_app.py").write_text(FLASK_APP)
    port = free_port()
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    server = run_server(
        [
            "-m",
            "pyswoole.cli.serve",
            "flask_app:app",
            "--interface",
            "wsgi",
            "--port",
            str(port),
            "--threads",
            "4",
        ],
        ready=lambda: port_open(port),
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=10) as c:
        r = c.get("/hello/wörld")
        assert r.status_code == 200 and r.text == "Hello, wörld!"
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        r = c.post("/form?x=1", data={"a": "b", "c": "é"}, headers={"User-Agent": "test-agent"})
        assert r.json() == {
            "form": {"a": "b", "c": "é"},
            "args": {"x": "1"},
            "ua": "test-agent",
            "path": "/form",
        }
        payload = os.urandom(500_000)
        r = c.post("/upload", files={"file": ("f.bin", payload)})
        assert r.json() == {"name": "f.bin", "sha": hashlib.sha256(payload).hexdigest()}
        r = c.get("/big")
        expected = b"".join(bytes([65 + i % 26]) * 16384 for i in range(64))
        assert r.content == expected
        assert "k=v" in r.headers.get("set-cookie", "") or "k=v" in c.get("/cookie").headers["set-cookie"]
        assert c.get("/fail").status_code == 500
        assert c.get("/hello/again").text == "Hello, again!"
    assert "flask failure for the test" in server.output()


def test_blocking_wsgi_requests_run_concurrently_in_threads(run_server, tmp_path):
    import concurrent.futures
    import time

    (tmp_path / "flask_app2.py").write_text(FLASK_APP)
    port = free_port()
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    run_server(
        [
            "-m",
            "pyswoole.cli.serve",
            "flask_app2:app",
            "--interface",
            "wsgi",
            "--port",
            str(port),
            "--threads",
            "4",
        ],
        ready=lambda: port_open(port),
        env=env,
    )
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        names = list(
            pool.map(lambda _: httpx.get(f"http://127.0.0.1:{port}/slow", timeout=10).text, range(4))
        )
    elapsed = time.monotonic() - start
    assert all(name.startswith("wsgi") for name in names)
    assert elapsed < 1.6, f"4 blocking requests of 0.5 s took {elapsed:.2f} s: not concurrent"


def test_wsgi_bad_status_or_header_gives_500(run_server, tmp_path):
    (tmp_path / "bad_wsgi.py").write_text(
        textwrap.dedent(
            """
            def app(environ, start_response):
                if environ["PATH_INFO"] == "/badheader":
                    start_response("200 OK", [("X-A", "b\\r\\nSet-Cookie: evil=1")])
                elif environ["PATH_INFO"] == "/nostart":
                    return [b"no start_response"]
                else:
                    start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"ok"]
            """
        )
    )
    port = free_port()
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    run_server(
        ["-m", "pyswoole.cli.serve", "bad_wsgi:app", "--interface", "wsgi", "--port", str(port)],
        ready=lambda: port_open(port),
        env=env,
    )
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
        r = c.get("/badheader")
        assert r.status_code == 500 and "evil" not in r.headers.get("set-cookie", "")
        assert c.get("/nostart").status_code == 500
        assert c.get("/").text == "ok"
