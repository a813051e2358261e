"""TLS in PROCESS mode (the default): a connection the server closes really ends, the master's
duplicate of the socket included."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import time

import pytest
from helpers import wait_for
from http_support import HttpServer, read_to_close, self_signed_certificate

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")


def test_tls_connections_end_when_the_server_closes_them(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    srv = HttpServer(tmp_path, {"ssl_cert_file": str(cert), "ssl_key_file": str(key)}, mode="process").start()
    try:
        context = ssl.create_default_context(cafile=str(cert))
        master_fds = f"/proc/{srv.process.pid}/fd"

        def fetch() -> None:
            with (
                socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                tls.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                reply = read_to_close(tls, 5)
            assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"Hello, World!")

        def settled_count() -> int | None:
            first = len(os.listdir(master_fds))
            time.sleep(0.2)
            return first if len(os.listdir(master_fds)) == first else None

        fetch()  # the master has finished starting (mailbox peers, pidfds) once one request went through
        before = wait_for(settled_count, 5)
        for _ in range(10):
            fetch()
        # the master dropped its duplicate of every closed connection (no descriptor leak)
        wait_for(lambda: len(os.listdir(master_fds)) <= before + 1, 5)
    finally:
        srv.stop()
