"""TLS on the core server's ports (``SOCK_TCP | SSL``, Unix stream, ``listen()`` ports), with real
clients: Python ssl sockets and ``openssl s_client``, in BASE and PROCESS modes."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import struct
import subprocess
import time

import pytest
from helpers import APPS, free_port, port_open, recv_exactly, recv_until, unix_open, wait_for
from http_support import self_signed_certificate

from pyswoole import (
    BASE,
    SOCK_TCP,
    SOCK_UDP,
    SSL,
    Client,
    Server,
    SettingsError,
    SSL_TLSv1,
    SSL_TLSv1_2,
    SSL_TLSv1_3,
)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")

APP = APPS / "tls_echo_server.py"


@pytest.fixture
def certificate(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    return str(cert), str(key)


def start(run_server, certificate, address=None, **settings):
    cert, key = certificate
    port = free_port()
    address = address or f"tcp:{port}"
    ready = (lambda: unix_open(address[5:])) if address.startswith("unix:") else (lambda: port_open(port))
    server = run_server(
        [APP, address, json.dumps({"ssl_cert_file": cert, "ssl_key_file": key, **settings})], ready=ready
    )
    server.port = port
    return server


def client_context(cert: str, **attributes) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cert)
    for name, value in attributes.items():
        setattr(context, name, value)
    return context


def tls_connect(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def ask(sock: socket.socket, line: bytes) -> bytes:
    sock.sendall(line + b"\n")
    return recv_until(sock, lambda data: data.endswith(b"\n")).rstrip(b"\n")


def read_to_eof(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until the server ends the connection; an abrupt end counts as one."""
    try:
        return recv_until(sock, lambda _: False, timeout)
    except (ConnectionResetError, ssl.SSLError):
        return b""


@pytest.mark.parametrize("mode", ["base", "process"])
def test_tls_echo_info_and_close(run_server, certificate, mode):
    server = start(run_server, certificate, _mode=mode)
    context = client_context(certificate[0])
    context.set_alpn_protocols(["http/1.1"])
    with tls_connect(server.port, context) as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert tls.selected_alpn_protocol() is None  # a plain TCP server offers no protocol
        assert ask(tls, b"hello") == b"Server: hello"
        # lines split over several TLS records, and several lines in one record
        tls.sendall(b"spl")
        time.sleep(0.05)
        tls.sendall(b"it\nsecond\nthird\n")
        replies = recv_until(tls, lambda data: data.count(b"\n") == 3)
        assert replies == b"Server: split\nServer: second\nServer: third\n"
        info = json.loads(ask(tls, b"info"))
        assert info["remote_ip"] == "127.0.0.1" and info["server_port"] == server.port
        assert "ssl_client_cert" not in info  # no client certificate was asked for
        tls.sendall(b"close\n")
        assert read_to_eof(tls) == b""
    server.wait_output("close")


@pytest.mark.parametrize("mode", ["base", "process"])
def test_openssl_s_client(run_server, certificate, mode):
    server = start(run_server, certificate, _mode=mode)
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-CAfile", certificate[0], "-quiet"],
        input=b"hello\nclose\n",
        capture_output=True,
        timeout=30,
    )
    assert b"Server: hello\n" in result.stdout, result.stderr
    assert b"verify return:1" in result.stderr


def test_pyswoole_client_with_ssl_and_a_client_certificate(run_server, certificate, tmp_path):
    (tmp_path / "client").mkdir()
    client_cert, client_key = map(str, self_signed_certificate(tmp_path / "client"))
    server = start(run_server, certificate, ssl_verify_peer=True, ssl_client_cert_file=client_cert)
    client = Client(SOCK_TCP | SSL)
    client.set(
        {
            "ssl_verify_peer": True,
            "ssl_cafile": certificate[0],
            "ssl_cert_file": client_cert,
            "ssl_key_file": client_key,
            "open_eof_split": True,
            "package_eof": b"\n",
        }
    )
    assert client.connect("127.0.0.1", server.port, timeout=5)
    try:
        client.send(b"from pyswoole\n")
        assert client.recv() == b"Server: from pyswoole\n"
        client.send(b"info\n")
        assert json.loads(client.recv())["ssl_client_cert"].startswith("-----BEGIN CERTIFICATE-----")
    finally:
        client.close()


@pytest.mark.parametrize("mode", ["base", "process"])
def test_length_framed_tls_port_from_listen(run_server, certificate, mode):
    length_port = free_port()
    server = start(run_server, certificate, _mode=mode, _length_port=length_port)
    packets = [b"a", b"", b"x" * 70_000, "é".encode()]
    stream = b"".join(struct.pack("!I", len(p)) + p for p in packets)
    with tls_connect(length_port, client_context(certificate[0])) as tls:
        for i in range(0, len(stream), 997):  # packets cut at arbitrary points
            tls.sendall(stream[i : i + 997])
        for packet in packets:
            (length,) = struct.unpack("!I", recv_exactly(tls, 4))
            assert recv_exactly(tls, length) == b">" + packet
        # the main port still speaks its own (line) protocol
    with tls_connect(server.port, client_context(certificate[0])) as tls:
        assert ask(tls, b"main") == b"Server: main"


@pytest.mark.parametrize("mode", ["base", "process"])
def test_plain_client_and_bad_handshakes_are_closed_and_logged(run_server, certificate, mode):
    server = start(run_server, certificate, _mode=mode)
    # plain text to a TLS port: the server ends the connection (in PROCESS mode the master lets
    # go of its duplicate too, or the client would wait forever)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as plain:
        plain.sendall(b"hello in the clear\n")
        assert read_to_eof(plain) == b""
    server.wait_output("TLS handshake with 127.0.0.1:")
    # a client that does not trust the certificate gives up during the handshake
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_connect(server.port, ssl.create_default_context())
    # garbage that looks like a TLS record
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as garbage:
        garbage.sendall(b"\x16\x03\x01\x00\x05" + b"\xff" * 5)
        assert read_to_eof(garbage) == b""
    # the server keeps serving
    with tls_connect(server.port, client_context(certificate[0])) as tls:
        assert ask(tls, b"still here") == b"Server: still here"
    assert "Traceback" not in server.output()


def test_unix_stream_tls(run_server, certificate, tmp_path):
    path = str(tmp_path / "tls.sock")
    start(run_server, certificate, address=f"unix:{path}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(5)
        raw.connect(path)
        with client_context(certificate[0]).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert ask(tls, b"over unix") == b"Server: over unix"


def test_heartbeat_closes_an_idle_tls_connection(run_server, certificate):
    server = start(run_server, certificate, heartbeat_check_interval=1, heartbeat_idle_time=1)
    with tls_connect(server.port, client_context(certificate[0])) as tls:
        assert ask(tls, b"ping") == b"Server: ping"
        started = time.monotonic()
        assert read_to_eof(tls, timeout=10) == b""
        assert time.monotonic() - started < 8
    server.wait_output("closing idle connection")


def test_uid_dispatch_keeps_a_tls_connection_in_its_worker(run_server, certificate):
    # dispatch_mode 5 moves a bound connection to worker uid % worker_num; a TLS session cannot move
    server = start(run_server, certificate, _mode="process", dispatch_mode=5)
    with tls_connect(server.port, client_context(certificate[0])) as tls:
        worker_id = json.loads(ask(tls, b"info"))["worker_id"]
        assert ask(tls, f"bind {worker_id + 1}".encode()) == b"bound True"
        assert ask(tls, b"still") == b"Server: still"
        assert json.loads(ask(tls, b"info"))["worker_id"] == worker_id


def test_backpressure_over_tls(run_server, certificate):
    server = start(run_server, certificate, buffer_output_size=256 * 1024)
    with tls_connect(server.port, client_context(certificate[0])) as tls:
        tls.sendall(b"flood\n")  # the client does not read: the server's buffer fills
        output = server.wait_output("flood stopped after")
        sent = int(output.split("flood stopped after ")[1].split()[0])
        assert 0 < sent < 1000
        assert "buffer_full" in output
        received = len(recv_exactly(tls, sent * 65536, timeout=20))
        assert received == sent * 65536
        server.wait_output("buffer_empty")
        assert ask(tls, b"after") == b"Server: after"


@pytest.mark.parametrize("mode", ["base", "process"])
def test_client_certificates(run_server, certificate, tmp_path, mode):
    (tmp_path / "client").mkdir()
    client_cert, client_key = map(str, self_signed_certificate(tmp_path / "client"))
    server = start(
        run_server, certificate, _mode=mode, ssl_verify_peer=True, ssl_client_cert_file=client_cert
    )
    with_certificate = client_context(certificate[0])
    with_certificate.load_cert_chain(client_cert, client_key)
    with tls_connect(server.port, with_certificate) as tls:
        info = json.loads(ask(tls, b"info"))
    with open(client_cert) as pem:
        assert info["ssl_client_cert"] == ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(pem.read()))
    # without a certificate the server refuses the client (under TLS 1.3 the client learns it
    # after its side of the handshake, at its first read)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        try:
            with client_context(certificate[0]).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"info\n")
                assert read_to_eof(tls) == b""
        except (ssl.SSLError, ConnectionResetError):
            pass
    server.wait_output("TLS handshake with 127.0.0.1:")


def test_optional_client_certificate(run_server, certificate, tmp_path):
    (tmp_path / "client").mkdir()
    client_cert, client_key = map(str, self_signed_certificate(tmp_path / "client"))
    server = start(run_server, certificate, ssl_client_cert_file=client_cert)  # asked for, not required
    with tls_connect(server.port, client_context(certificate[0])) as tls:
        assert "ssl_client_cert" not in json.loads(ask(tls, b"info"))
    with_certificate = client_context(certificate[0])
    with_certificate.load_cert_chain(client_cert, client_key)
    with tls_connect(server.port, with_certificate) as tls:
        assert json.loads(ask(tls, b"info"))["ssl_client_cert"].startswith("-----BEGIN CERTIFICATE-----")


def test_ssl_protocols_and_ciphers(run_server, certificate):
    server = start(run_server, certificate, ssl_protocols=SSL_TLSv1_3, ssl_ciphers="ECDHE+AESGCM")
    with tls_connect(server.port, client_context(certificate[0])) as tls:
        assert tls.version() == "TLSv1.3"
    with pytest.raises(ssl.SSLError):
        tls_connect(server.port, client_context(certificate[0], maximum_version=ssl.TLSVersion.TLSv1_2))
    with tls_connect(server.port, client_context(certificate[0])) as tls:
        assert ask(tls, b"after") == b"Server: after"


def test_certificate_without_the_ssl_flag_serves_plain_text_and_warns(run_server, certificate):
    server = start(run_server, certificate, _plain=True)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as plain:
        assert ask(plain, b"clear") == b"Server: clear"
    assert "has ssl_cert_file but no SSL flag" in server.output()


def test_configuration_errors():
    with pytest.raises(ValueError, match="DTLS is not supported"):
        Server("127.0.0.1", 0, BASE, SOCK_UDP | SSL)
    server = Server("127.0.0.1", 0, BASE, SOCK_TCP | SSL)
    with pytest.raises(SettingsError, match="unbroken range"):
        server.set({"ssl_protocols": SSL_TLSv1 | SSL_TLSv1_3})
    with pytest.raises(SettingsError, match="ssl_protocols"):
        server.set({"ssl_protocols": 1})
    server.set({"ssl_protocols": SSL_TLSv1_2 | SSL_TLSv1_3})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "needs ssl_cert_file"),
        ({"ssl_cert_file": "/nonexistent/cert.pem"}, "cannot load ssl_cert_file '/nonexistent/cert.pem'"),
        ({"_certificate": True, "ssl_ciphers": "NO-SUCH-CIPHER"}, "ssl_ciphers"),
        ({"_certificate": True, "ssl_verify_peer": True}, "ssl_verify_peer needs ssl_client_cert_file"),
    ],
)
def test_start_fails_clearly_without_a_usable_certificate(run_server, certificate, settings, message):
    if settings.pop("_certificate", False):
        settings.update(ssl_cert_file=certificate[0], ssl_key_file=certificate[1])
    port = free_port()
    server = run_server([APP, f"tcp:{port}", json.dumps(settings)])
    wait_for(lambda: server.proc.poll() is not None, 15, message="the server did not fail")
    assert server.proc.returncode != 0
    assert "SettingsError" in server.output() and message in server.output()
    assert not port_open(port)


HTTPS_PORT_APP = """
import sys
from pyswoole import BASE, SOCK_TCP, Client, SSL
from pyswoole.http import Server

port, tls_port, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
server = Server("127.0.0.1", port, BASE)
server.set({"worker_num": 1})
secure = server.listen("127.0.0.1", tls_port, SOCK_TCP | SSL)
secure.set({"ssl_cert_file": cert, "ssl_key_file": key})


@server.on("request")
def on_request(request, response):
    response.sendfile(sys.argv[5])


server.start()
"""


def test_http_server_with_an_ssl_listen_port(run_server, certificate, tmp_path):
    """An HTTP server's extra port with the SSL flag: HTTPS there, plain HTTP on the main port;
    a large file leaves through TLS (not by sendfile past it)."""
    script, body = tmp_path / "https_port.py", tmp_path / "body.bin"
    script.write_text(HTTPS_PORT_APP)
    body.write_bytes(bytes(range(256)) * 1024)  # 256 KiB: over the zero-copy threshold
    port, tls_port = free_port(), free_port()
    run_server(
        [script, port, tls_port, *certificate, body], ready=lambda: port_open(port) and port_open(tls_port)
    )
    request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    context = client_context(certificate[0])
    context.set_alpn_protocols(["h2", "http/1.1"])
    with tls_connect(tls_port, context) as tls:
        assert tls.selected_alpn_protocol() == "http/1.1"
        tls.sendall(request)
        reply = read_to_eof(tls, timeout=10)
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(body.read_bytes())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
        plain.sendall(request)
        assert read_to_eof(plain, timeout=10).endswith(body.read_bytes())
