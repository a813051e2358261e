"""Static files (MIME, 304, ranges, index files, traversal refusals), sendfile, streamed uploads
and TLS, against a real server process."""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl

import httpx
import pytest
from helpers import wait_for
from http_support import HttpServer, self_signed_certificate

BIG = 300 * 1024  # over the inline limit: streamed with sendfile


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("static")
    root = base / "root"
    (root / "static" / "sub").mkdir(parents=True)
    (root / "static" / "hello.txt").write_text("hello static\n")
    (root / "static" / "style.css").write_text("body{}")
    (root / "static" / "sub" / "index.html").write_text("<p>index</p>")
    (root / "static" / "empty").mkdir()
    (root / "static" / "big.bin").write_bytes(os.urandom(BIG))
    (root / "static" / "a b.txt").write_text("space")
    (base / "secret.txt").write_text("outside the root")
    os.symlink(base / "secret.txt", root / "static" / "link-out.txt")
    os.symlink(root / "static" / "hello.txt", root / "static" / "link-in.txt")
    (root / "private.txt").write_text("not under a static location")
    uploads = base / "uploads"
    uploads.mkdir()
    return base, root, uploads


@pytest.fixture(scope="module")
def server(files):
    base, root, uploads = files
    srv = HttpServer(
        base,
        {
            "document_root": str(root),
            "enable_static_handler": True,
            "static_handler_locations": ["/static"],
            "upload_tmp_dir": str(uploads),
            "package_max_length": 64 * 1024 * 1024,
        },
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url(""), timeout=10) as c:
        yield c


def test_static_file_with_mime_type_etag_and_last_modified(client):
    r = client.get("/static/hello.txt")
    assert r.status_code == 200 and r.text == "hello static\n"
    assert r.headers["content-type"] == "text/plain"
    assert r.headers["etag"] and r.headers["last-modified"]
    assert client.get("/static/style.css").headers["content-type"] == "text/css"
    assert client.get("/static/a%20b.txt").text == "space"


def test_conditional_requests_get_304(client):
    r = client.get("/static/hello.txt")
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    r = client.get("/static/hello.txt", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""
    r = client.get("/static/hello.txt", headers={"If-Modified-Since": modified})
    assert r.status_code == 304
    r = client.get("/static/hello.txt", headers={"If-None-Match": '"other"'})
    assert r.status_code == 200


def test_ranges_206_and_416(client, files):
    data = (files[1] / "static" / "big.bin").read_bytes()
    r = client.get("/static/big.bin", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{BIG}"
    r = client.get("/static/big.bin", headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == data[-5:]
    r = client.get("/static/big.bin", headers={"Range": "bytes=1000-"})
    assert r.status_code == 206 and r.content == data[1000:]
    r = client.get("/static/big.bin", headers={"Range": f"bytes={BIG}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{BIG}"


def test_large_file_streams_whole(client, files):
    data = (files[1] / "static" / "big.bin").read_bytes()
    r = client.get("/static/big.bin")
    assert r.status_code == 200 and r.headers["content-length"] == str(BIG)
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(data).digest()
    assert client.head("/static/big.bin").headers["content-length"] == str(BIG)


def test_index_file_and_directory_without_index(client):
    assert client.get("/static/sub/").text == "<p>index</p>"
    r = client.get("/static/empty/")  # no index, autoindex off: the request callback answers
    assert r.status_code == 404 and r.text.startswith("not found")


def test_paths_outside_locations_go_to_the_request_callback(client):
    r = client.get("/private.txt")
    assert r.status_code == 404 and r.text == "not found: /private.txt"
    assert client.get("/static/missing.txt").text == "not found: /static/missing.txt"


@pytest.mark.parametrize(
    "path",
    [
        b"/static/../private.txt",
        b"/static/../../secret.txt",
        b"/static/%2e%2e/private.txt",
        b"/static/%2E%2E/%2e%2e/secret.txt",
        b"/static/..%2fprivate.txt",
        b"/static/sub/..%2f..%2f..%2fsecret.txt",
        b"/static/..\\private.txt",
        b"/static/%00hello.txt",
        b"/static//etc/passwd",
        b"/static/link-out.txt",
    ],
)
def test_traversal_is_refused(server, path):
    data = server.raw(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status = data.split(b"\r\n", 1)[0]
    assert status in (b"HTTP/1.1 403 Forbidden", b"HTTP/1.1 404 Not Found"), data[:200]
    assert b"outside the root" not in data and b"not under a static" not in data
    assert b"root:" not in data


def test_symlink_inside_the_root_is_served(client):
    assert client.get("/static/link-in.txt").text == "hello static\n"


def test_response_sendfile_with_offset_and_length(client, files):
    path = files[1] / "static" / "big.bin"
    data = path.read_bytes()
    r = client.get("/sendfile", params={"path": str(path), "offset": 100, "length": 50})
    assert r.content == data[100:150]
    assert r.headers["content-type"] == "application/octet-stream"
    r = client.get("/sendfile", params={"path": str(path)})
    assert r.content == data


def test_multipart_upload_streams_to_tmp_dir_and_is_removed_after(client, files):
    uploads = files[2]
    payload = os.urandom(200_000)
    r = client.post(
        "/echo",
        data={"title": "a file", "lang": "ünï"},
        files={"file": ("report.bin", payload, "application/x-test")},
    )
    info = r.json()
    assert info["post"] == {"title": "a file", "lang": "ünï"}
    upload = info["files"]["file"]
    assert upload["name"] == "report.bin" and upload["type"] == "application/x-test"
    assert upload["size"] == len(payload) and upload["error"] == 0
    assert upload["sha"] == hashlib.sha256(payload).hexdigest()
    assert os.path.dirname(upload["tmp_name"]) == str(uploads)
    wait_for(lambda: not os.path.exists(upload["tmp_name"]), 5, message="temp file not removed")
    assert info["body"] == ""


def test_large_upload_keeps_worker_memory_flat(server, files):
    pid = int(httpx.get(server.url("/pid")).text)

    def rss_kib() -> int:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

    before = rss_kib()
    size = 48 * 1024 * 1024
    boundary = b"xyzBOUNDARYxyz"
    head = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="big.dat"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
    )
    tail = b"\r\n--" + boundary + b"--\r\n"
    block = b"\xab" * (1024 * 1024)

    def body():
        yield head
        for _ in range(size // len(block)):
            yield block
        yield tail

    r = httpx.post(
        server.url("/upload-size"),
        content=body(),
        headers={
            "Content-Type": "multipart/form-data; boundary=" + boundary.decode(),
            "Content-Length": str(len(head) + size + len(tail)),
        },
        timeout=60,
    )
    info = r.json()
    assert info["size"] == size and info["exists"]
    growth = rss_kib() - before
    assert growth < 16 * 1024, f"worker RSS grew by {growth} KiB for a {size >> 20} MiB upload"
    wait_for(lambda: not os.path.exists(info["tmp_name"]), 5)


def test_upload_cut_short_leaves_no_temp_file(server, files):
    uploads = files[2]
    before = set(os.listdir(uploads))
    with server.connect() as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name=f; filename=x\r\n\r\n"
            + b"z"
            * 5000
        )
        wait_for(lambda: set(os.listdir(uploads)) - before, 5)
    wait_for(lambda: set(os.listdir(uploads)) == before, 5, message="partial upload not removed")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_tls_with_a_self_signed_certificate(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    srv = HttpServer(tmp_path, {"ssl_cert_file": str(cert), "ssl_key_file": str(key)}).start()
    try:
        context = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=context, timeout=5) as c:
            r = c.get(srv.url("/hello", "https"))
            assert r.text == "Hello, World!"
            r = c.post(srv.url("/echo", "https"), data={"a": "1"})
            assert r.json()["post"] == {"a": "1"}
            assert c.get(srv.url("/big?n=300000", "https")).text == "x" * 300000
        with pytest.raises(httpx.RemoteProtocolError):  # plain HTTP on the TLS port
            httpx.get(srv.url("/hello"), timeout=5)
    finally:
        srv.stop()
