"""``pyswoole serve`` with real ASGI applications (FastAPI/Starlette and a raw ASGI app), and the
same requests against uvicorn giving the same answers."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import textwrap

import httpx
import pytest
from helpers import free_port, port_open

FASTAPI_APP = textwrap.dedent(
    """
    import asyncio, hashlib
    from contextlib import asynccontextmanager
    from fastapi import FastAPI, File, Form, Request, Response, UploadFile
    from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, StreamingResponse

    @asynccontextmanager
    async def lifespan(app):
        app.state.started = "yes"
        yield {"db": "connected"}

    app = FastAPI(lifespan=lifespan)

    @app.get("/items/{item_id}")
    async def item(item_id: int, q: str | None = None):
        return {"item_id": item_id, "q": q}

    @app.post("/json")
    async def post_json(request: Request):
        data = await request.json()
        return {"got": data, "n": len(data)}

    @app.get("/stream")
    async def stream():
        async def parts():
            for i in range(5):
                yield f"chunk{i}\\n".encode()
                await asyncio.sleep(0.01)
        return StreamingResponse(parts(), media_type="text/plain")

    @app.post("/upload")
    async def upload(file: UploadFile = File(...), note: str = Form("")):
        data = await file.read()
        return {"filename": file.filename, "size": len(data), "sha": hashlib.sha256(data).hexdigest(), "note": note}

    @app.get("/state")
    async def state(request: Request):
        return {"started": app.state.started, "db": request.state.db}

    @app.get("/headers")
    async def headers(request: Request, response: Response):
        response.set_cookie("session", "abc", httponly=True)
        response.headers["X-Echo"] = request.headers.get("x-in", "")
        return {"path": request.url.path, "query": str(request.query_params), "client": request.client.host}

    @app.get("/redirect")
    async def redirect():
        return RedirectResponse("/items/1", status_code=307)

    @app.get("/text")
    async def text():
        return PlainTextResponse("plain é", status_code=201)

    @app.get("/empty")
    async def empty():
        return Response(status_code=204)

    @app.get("/fail")
    async def fail():
        raise RuntimeError("boom in the app")

    @app.get("/scoped")
    async def scoped():
        import anyio
        with anyio.fail_after(5):  # a cancel scope entered in the first step, left after a suspension
            await anyio.sleep(0.01)
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.sleep, 0.01)
        return {"scoped": True}
    """
)

RAW_APP = textwrap.dedent(
    """
    import asyncio
    from types import MappingProxyType

    after_end = []  # what receive() gave once the response was complete

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        if path == "/":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")]})
            await send({"type": "http.response.body", "body": b"Hello, World!"})
        elif path == "/echo":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": b"!"})
        elif path == "/noresponse":
            return
        elif path == "/half":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
        elif path == "/badheader":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"a\\r\\nSet-Cookie: y")]})
        elif path == "/close":  # lists (not tuples) of headers; the server's own Server and Date win
            await send({"type": "http.response.start", "status": 200,
                        "headers": [[b"connection", b"close"], [b"server", b"app"], [b"date", b"never"]]})
            await send({"type": "http.response.body", "body": b"bye"})
        elif path == "/nocontent":
            await send({"type": "http.response.start", "status": 204, "headers": [(b"x-a", b"1")]})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/timeout":  # asyncio.timeout entered before the first suspension
            async with asyncio.timeout(5):
                await asyncio.sleep(0.01)
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
        elif path == "/anyio":  # imported late; a cancel scope entered in the first step needs a real Task
            import anyio
            with anyio.fail_after(5):
                await anyio.sleep(0.01)
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
            await send({"type": "http.response.body", "body": b"anyio"})
        elif path == "/bodytype":  # a body that is not bytes: as the reference (bytearray ok, str not)
            body = bytearray(b"ba") if scope["query_string"] == b"bytearray" else "str"
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
        elif path == "/streamstr":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
            await send({"type": "http.response.body", "body": "str"})
        elif path == "/bodyfirst":
            await send({"type": "http.response.body", "body": b"x"})
        elif path == "/starttwice":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.start", "status": 200, "headers": []})
        elif path == "/mapping":  # messages that are mappings but not dicts; a str status; more_body=0
            await send(MappingProxyType({"type": "http.response.start", "status": "201",
                                         "headers": ((b"X-Up", b"1"),)}))
            await send(MappingProxyType({"type": "http.response.body", "body": b"mapped", "more_body": 0}))
        elif path == "/awaitables":  # receive()/send() results given to asyncio as awaitables
            message = await asyncio.wait_for(receive(), 5)
            start = asyncio.ensure_future(send({"type": "http.response.start", "status": 200, "headers": []}))
            await start
            await asyncio.wait_for(send({"type": "http.response.body", "body": message["body"]}), 5)
            after_end.append(await asyncio.wait_for(receive(), 5))
        elif path == "/afterend":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": repr(after_end).encode()})
        elif path.startswith("/scope"):
            import json
            info = {k: v for k, v in scope.items()
                    if k in ("http_version", "method", "path", "scheme", "root_path", "server", "client")}
            info["query_string"] = scope["query_string"].decode()
            info["raw_path"] = scope["raw_path"].decode()
            info["headers"] = [[k.decode(), v.decode()] for k, v in scope["headers"]]
            body = json.dumps(info).encode()
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
    """
)


def serve(run_server, tmp_path, module: str, source: str, *extra: str, mode: str = "base"):
    (tmp_path / f"{module}.py").write_text(source)
    port = free_port()
    argv = ["-m", "pyswoole.cli.serve", f"{module}:app", "--port", str(port), "--mode", mode, *extra]
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    server = run_server(argv, ready=lambda: port_open(port), env=env)
    server.url = f"http://127.0.0.1:{port}"
    return server


@pytest.fixture
def fastapi_server(run_server, tmp_path):
    return serve(run_server, tmp_path, "fastapi_app", FASTAPI_APP)


def test_fastapi_json_stream_upload_state_and_errors(fastapi_server):
    with httpx.Client(base_url=fastapi_server.url, timeout=10) as c:
        assert c.get("/items/7", params={"q": "x y"}).json() == {"item_id": 7, "q": "x y"}
        assert c.get("/items/notanint").status_code == 422
        assert c.post("/json", json={"a": [1, 2]}).json() == {"got": {"a": [1, 2]}, "n": 1}
        r = c.get("/stream")
        assert r.text == "".join(f"chunk{i}\n" for i in range(5))
        assert r.headers["transfer-encoding"] == "chunked"
        payload = os.urandom(3 * 1024 * 1024)
        r = c.post("/upload", files={"file": ("big.bin", payload)}, data={"note": "n1"})
        assert r.json() == {
            "filename": "big.bin",
            "size": len(payload),
            "sha": hashlib.sha256(payload).hexdigest(),
            "note": "n1",
        }
        assert c.get("/state").json() == {"started": "yes", "db": "connected"}
        assert c.get("/scoped").json() == {"scoped": True}  # anyio's cancel scopes get a real Task
        r = c.get("/fail")
        assert r.status_code == 500
        assert c.get("/items/1").status_code == 200  # the worker is still serving
    assert "boom in the app" in fastapi_server.output()


def test_raw_asgi_app_scope_and_protocol_errors(run_server, tmp_path):
    server = serve(run_server, tmp_path, "raw_app", RAW_APP)
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.get("/")
        assert r.text == "Hello, World!" and r.headers["content-length"] == "13"
        assert r.headers["server"] == "pyswoole"
        assert c.post("/echo", content=b"body").text == "body!"
        info = c.get("/scope?a=1&b=%20", headers={"X-Mixed-Case": "V"}).json()
        assert info["method"] == "GET" and info["path"] == "/scope" and info["scheme"] == "http"
        assert info["query_string"] == "a=1&b=%20" and info["http_version"] == "1.1"
        assert ["x-mixed-case", "V"] in info["headers"]
        assert info["server"] == ["127.0.0.1", int(server.url.rsplit(":", 1)[1])]
        assert info["client"][0] == "127.0.0.1"
        assert c.get("/scope%20x/%C3%A9").json()["path"] == "/scope x/é"
        r = c.head("/")
        assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "13"
        r = c.get("/nocontent")
        assert r.status_code == 204 and r.headers["x-a"] == "1" and "content-length" not in r.headers
        assert c.get("/timeout").text == "ok"
        assert c.get("/anyio").text == "anyio"
        r = c.get("/close")
        assert r.text == "bye" and r.headers["connection"] == "close"
        assert r.headers["server"] == "pyswoole" and r.headers["date"] != "never"
        assert c.get("/noresponse").status_code == 500
        assert c.get("/badheader").status_code == 500
        r = c.get("/bodytype?bytearray")
        assert r.text == "ba" and r.headers["content-length"] == "2"
        assert c.get("/bodytype?str").status_code == 500
        with pytest.raises(httpx.RemoteProtocolError):
            c.get("/streamstr")
        assert c.get("/bodyfirst").status_code == 500
        assert c.get("/starttwice").status_code == 500
        r = c.get("/mapping")
        assert r.status_code == 201 and r.text == "mapped" and r.headers["x-up"] == "1"
        assert c.post("/awaitables", content=b"in").text == "in"
        assert c.get("/afterend").text == "[{'type': 'http.disconnect'}]"
        with pytest.raises(httpx.RemoteProtocolError):
            c.get("/half")  # a body cut short is not passed off as complete
        assert c.get("/").status_code == 200
    port = int(server.url.rsplit(":", 1)[1])
    # HTTP/1.0 with keep-alive: said so in the answer, and the connection serves the next request
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        request = b"GET /bodytype?bytearray HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        for _ in range(2):
            sock.sendall(request)
            data = b""
            while not data.endswith(b"\r\n\r\nba"):
                chunk = sock.recv(65536)
                assert chunk, data
                data += chunk
            assert data.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n" in data
    # pipelined, one of them suspending: the answers leave in request order
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"".join(
                b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path for path in (b"/", b"/timeout", b"/anyio", b"/")
            )
        )
        data = b""
        while data.count(b"HTTP/1.1 200") < 4 or not data.endswith(b"Hello, World!"):
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    assert (
        data.index(b"Hello")
        < data.index(b"\r\n\r\nok")
        < data.index(b"\r\n\r\nanyio")
        < data.rindex(b"Hello")
    )


TASK_SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from pyswoole import asgi
    from pyswoole.http import Server
    import raw_app3

    async def app(scope, receive, send):  # a startup that takes a while: early requests wait for it
        if scope["type"] == "lifespan" and sys.argv[2] == "slow":
            await asyncio.sleep(1)
        await raw_app3.app(scope, receive, send)

    server = Server("127.0.0.1", int(sys.argv[1]))
    server.set({"worker_num": 1})
    asgi.attach(server, app, task=sys.argv[2] == "task")
    server.start()
    """
)


@pytest.mark.parametrize("how", ["task", "slow"])
def test_requests_in_tasks_and_during_startup(run_server, tmp_path, how):
    """The Python path of ASGIHandler: every request in a Task (task=True), or requests that arrive
    while the lifespan startup runs."""
    (tmp_path / "raw_app3.py").write_text(RAW_APP)
    (tmp_path / "task_server.py").write_text(TASK_SERVER)
    port = free_port()
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    run_server([tmp_path / "task_server.py", port, how], ready=lambda: port_open(port), env=env)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
        assert c.get("/").text == "Hello, World!"
        assert c.post("/echo", content=b"body").text == "body!"
        assert c.get("/anyio").text == "anyio"
        r = c.get("/mapping")
        assert r.status_code == 201 and r.text == "mapped"
        assert c.get("/noresponse").status_code == 500
        assert c.get("/bodytype?str").status_code == 500
        assert c.get("/").status_code == 200


def test_same_answers_as_uvicorn(run_server, tmp_path):
    (tmp_path / "diff_app.py").write_text(FASTAPI_APP)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    ours = serve(run_server, tmp_path, "diff_app", FASTAPI_APP)
    port = free_port()
    run_server(
        ["-m", "uvicorn", "diff_app:app", "--port", str(port), "--log-level", "warning"],
        ready=lambda: port_open(port),
        env=env,
    )
    theirs = f"http://127.0.0.1:{port}"
    requests = [
        ("GET", "/items/3?q=a%20b", {}, None),
        ("GET", "/items/x", {}, None),
        ("POST", "/json", {"Content-Type": "application/json"}, b'{"k": "v"}'),
        ("POST", "/json", {"Content-Type": "application/json"}, b"{not json"),
        ("GET", "/stream", {}, None),
        ("GET", "/headers?z=1", {"X-In": "hello"}, None),
        ("GET", "/redirect", {}, None),
        ("GET", "/text", {}, None),
        ("GET", "/empty", {}, None),
        ("HEAD", "/items/3", {}, None),
        ("GET", "/missing", {}, None),
        ("DELETE", "/items/3", {}, None),
    ]
    compared = ("content-type", "content-length", "set-cookie", "location", "x-echo", "transfer-encoding")
    with httpx.Client(timeout=10, follow_redirects=False) as c:
        for method, path, headers, body in requests:
            a = c.request(method, ours.url + path, headers=headers, content=body)
            b = c.request(method, theirs + path, headers=headers, content=body)
            assert a.status_code == b.status_code, (method, path)
            assert a.content == b.content, (method, path)
            for name in compared:
                assert a.headers.get_list(name) == b.headers.get_list(name), (method, path, name)


def test_serve_wsgi_rejects_bad_target(tmp_path):
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "pyswoole.cli.serve", "nocolon", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode != 0 and "module:app" in out.stderr


def test_process_mode_with_two_workers(run_server, tmp_path):
    server = serve(run_server, tmp_path, "raw_app2", RAW_APP, "--workers", "2", mode="process")
    with httpx.Client(base_url=server.url, timeout=10) as c:
        for _ in range(10):
            assert c.get("/").text == "Hello, World!"
        assert c.post("/echo", content=b"x" * 100_000).content == b"x" * 100_000 + b"!"


def test_reload_restarts_on_code_change(run_server, tmp_path):
    source = RAW_APP.replace(b"Hello, World!".decode(), "Hello, World?")
    server_file = tmp_path / "reload_app.py"
    server_file.write_text(source)
    port = free_port()
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    run_server(
        [
            "-m",
            "pyswoole.cli.serve",
            "reload_app:app",
            "--port",
            str(port),
            "--reload",
            "--reload-dir",
            str(tmp_path),
        ],
        ready=lambda: port_open(port),
        env=env,
    )
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "Hello, World?"
    server_file.write_text(source.replace("Hello, World?", "Hello, Again!"))
    os.utime(server_file, (os.path.getmtime(server_file) + 2,) * 2)

    def changed() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=1).text == "Hello, Again!"
        except httpx.HTTPError:
            return False

    from helpers import wait_for

    wait_for(changed, 15, message="the server did not restart with the new code")


WEBSOCKET_APP = textwrap.dedent(
    """
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    closed = []

    async def echo(websocket: WebSocket):
        await websocket.accept(subprotocol="chat" if "chat" in websocket.scope["subprotocols"] else None)
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    closed.append(message["code"])
                    return
                if message.get("text") == "close":
                    await websocket.close(code=4001, reason="asked to")
                    return
                if message.get("text") is not None:
                    await websocket.send_text("echo:" + message["text"])
                else:
                    await websocket.send_bytes(message["bytes"][::-1])
        except WebSocketDisconnect as exc:
            closed.append(exc.code)

    async def refuse(websocket: WebSocket):
        await websocket.close(code=1008)

    async def closes(request):
        return PlainTextResponse(repr(closed))

    app = Starlette(routes=[WebSocketRoute("/ws", echo), WebSocketRoute("/refuse", refuse), Route("/closes", closes)])
    """
)


def test_websocket_scope_with_starlette(run_server, tmp_path):
    import asyncio

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    server = serve(run_server, tmp_path, "ws_app", WEBSOCKET_APP)
    ws_url = server.url.replace("http://", "ws://")

    async def scenario() -> None:
        async with connect(ws_url + "/ws", subprotocols=["chat"]) as ws:
            assert ws.subprotocol == "chat"
            await ws.send("hi")
            assert await ws.recv() == "echo:hi"
            await ws.send(b"\x01\x02\x03")
            assert await ws.recv() == b"\x03\x02\x01"
            await ws.send("close")
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd.code == 4001 and info.value.rcvd.reason == "asked to"
        async with connect(ws_url + "/ws") as ws:
            assert ws.subprotocol is None
            await ws.send("x")
            assert await ws.recv() == "echo:x"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url + "/refuse"):
                pass
        assert refused.value.response.status_code == 403

    asyncio.run(asyncio.wait_for(scenario(), 15))
    closes = httpx.get(server.url + "/closes", timeout=5).text
    assert closes == "[1000]"  # the second client closed normally
    assert httpx.get(server.url + "/ws", timeout=5).status_code in (
        400,
        404,
    )  # plain HTTP to a websocket route
