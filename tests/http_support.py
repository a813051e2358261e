"""Shared pieces of the HTTP tests: a server script with many routes, started once per module,
and raw-socket helpers (the malformed cases need bytes no client library would send)."""

from __future__ import annotations

import json
import socket
import subprocess
import textwrap
from pathlib import Path

from helpers import ServerProcess, free_port, port_open, recv_until

APP_SOURCE = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from pyswoole.http import Server, Response
    from pyswoole import BASE, PROCESS

    port, settings = int(sys.argv[1]), json.loads(sys.argv[2])
    app = Server("127.0.0.1", port, PROCESS if sys.argv[3:] == ["process"] else BASE)
    app.set({"worker_num": 1, **settings})

    def describe(request):
        return {
            "header": request.header, "server": request.server, "get": request.get,
            "post": request.post, "cookie": request.cookie, "files": request.files,
            "body": request.raw_content().decode("latin-1"), "method": request.get_method(),
            "fd": request.fd, "pid": os.getpid(),
        }

    deferred = []  # cids whose defer ran (route /coroutine)

    async def detached_reply(fd):
        await asyncio.sleep(0.1)
        Response.create(fd).end("late reply")

    @app.on("request")
    async def on_request(request, response):
        path = request.server["request_uri"]
        if path == "/hello":
            response.header("content-type", "text/plain")
            response.end("Hello, World!")
        elif path == "/echo":
            response.header("Content-Type", "application/json")
            files = request.files or {}
            for info in files.values():
                with open(info["tmp_name"], "rb") as f:
                    info["sha"] = __import__("hashlib").sha256(f.read()).hexdigest()
            response.end(json.dumps(describe(request)))
        elif path == "/upload-size":
            info = (request.files or {}).get("file") or {}
            response.end(json.dumps({"size": info.get("size"), "tmp_name": info.get("tmp_name"),
                                     "exists": os.path.exists(info.get("tmp_name", "/nonexistent"))}))
        elif path == "/sleep":
            await asyncio.sleep(float(request.get["s"]))
            response.end("slept " + request.get["s"])
        elif path == "/stream":
            for i in range(3):
                response.write(f"part{i};")
                await asyncio.sleep(0.01)
            response.end()
        elif path == "/coroutine":
            from pyswoole import coroutine as co
            cid = co.get_cid()
            co.defer(lambda: deferred.append(cid))
            if request.get and "raise" in request.get:
                await asyncio.sleep(0.01)
                raise RuntimeError("handler failure after a suspension, for the test")
            if request.get and "sleep" in request.get:
                await asyncio.sleep(0.01)
            response.end(json.dumps({"cid": cid, "after": co.get_cid(), "deferred": deferred}))
        elif path == "/raise":
            response.header("X-Before", "1")
            raise RuntimeError("handler failure for the test")
        elif path == "/noend":
            response.status(201)
        elif path == "/cookie":
            response.cookie("a", "b c", path="/", httponly=True)
            response.raw_cookie("raw", "x%20y")
            response.end("ok")
        elif path == "/redirect":
            response.redirect("/hello", 301)
        elif path == "/big":
            response.header("Content-Type", "text/plain")
            response.end("x" * int(request.get.get("n", "200000")))
        elif path == "/detach":
            response.detach()
            asyncio.get_running_loop().create_task(detached_reply(request.fd))
        elif path == "/sendfile":
            response.sendfile(request.get["path"], int(request.get.get("offset", 0)), int(request.get.get("length", 0)))
        elif path == "/status":
            response.status(int(request.get["code"]), request.get.get("reason"))
            response.end("status")
        elif path == "/pid":
            response.end(str(os.getpid()))
        else:
            response.status(404)
            response.end("not found: " + path)

    app.start()
    """
)


class HttpServer:
    """The test app in its own process group; ``url(path)`` and ``raw(bytes)`` talk to it."""

    def __init__(self, workdir: Path, settings: dict | None = None, mode: str = "base"):
        self.port = free_port()
        script = workdir / "http_app.py"
        script.write_text(APP_SOURCE)
        argv = [str(script), str(self.port), json.dumps(settings or {}), mode]
        self.process = ServerProcess(argv, workdir)

    def start(self) -> HttpServer:
        self.process.start(ready=lambda: port_open(self.port))
        return self

    def stop(self) -> None:
        self.process.stop()

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def raw(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Send ``data``, read until the server closes (or ``timeout``)."""
        with self.connect(timeout) as sock:
            sock.sendall(data)
            return read_to_close(sock, timeout)


def read_to_close(sock: socket.socket, timeout: float = 5.0) -> bytes:
    try:
        return recv_until(sock, lambda _: False, timeout)
    except TimeoutError as exc:
        raise AssertionError(f"connection not closed within {timeout} s: {exc}") from None


def read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, dict[str, str], bytes]:
    """One Content-Length delimited response: (status line, headers, body)."""
    data = recv_until(sock, lambda d: b"\r\n\r\n" in d, timeout)
    head, _, rest = data.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += recv_until(sock, lambda d: len(d) > 0, timeout)
    assert len(rest) == length, "read past the response: pipelined responses are read one by one"
    return status, headers, rest


def split_responses(data: bytes) -> list[tuple[bytes, bytes]]:
    """Content-Length delimited responses in ``data``: [(status line, body)]."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n")[0]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        out.append((status, rest[:length]))
        data = rest[length:]
    return out


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with the ``openssl`` command."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key
