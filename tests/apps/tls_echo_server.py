"""A TLS echo server for the TLS tests.

Usage: tls_echo_server.py ADDRESS SETTINGS_JSON. ADDRESS is ``tcp:PORT`` or ``unix:PATH``; the
port has the SSL flag unless the settings say ``"_plain": true``. Lines (``open_eof_split``) are
commands: ``info`` answers ``getClientInfo`` as JSON, ``close`` closes the connection, ``flood``
sends 64 KiB chunks until ``send`` refuses, ``bind UID`` binds the connection to UID, anything else is echoed as ``Server: <line>``. ``"_length_port": N`` adds a TLS port that echoes
length-framed packets (4-byte big-endian length, then the body). ``"_mode": "process"`` runs in
PROCESS mode (BASE by default). Events are printed one line each.
"""

import json
import struct
import sys

from pyswoole import BASE, PROCESS, SOCK_TCP, SOCK_UNIX_STREAM, SSL, Server

kind, _, address = sys.argv[1].partition(":")
settings = json.loads(sys.argv[2])
mode = PROCESS if settings.pop("_mode", "base") == "process" else BASE
ssl_flag = 0 if settings.pop("_plain", False) else SSL
length_port = settings.pop("_length_port", None)
if kind == "unix":
    server = Server(address, 0, mode, SOCK_UNIX_STREAM | ssl_flag)
else:
    server = Server("127.0.0.1", int(address), mode, SOCK_TCP | ssl_flag)
server.set({"worker_num": 2, "open_eof_split": True, "package_eof": "\n", **settings})


def say(*parts):
    sys.stdout.write(" ".join(map(str, parts)) + "\n")
    sys.stdout.flush()


@server.on("connect")
def on_connect(server, fd, reactor_id):
    say("connect", fd)


@server.on("close")
def on_close(server, fd, reactor_id):
    say("close", fd)


@server.on("buffer_full")
def on_buffer_full(server, fd):
    say("buffer_full", fd)


@server.on("buffer_empty")
def on_buffer_empty(server, fd):
    say("buffer_empty", fd)


@server.on("receive")
def on_receive(server, fd, reactor_id, data):
    command = data.rstrip(b"\r\n")
    if command == b"info":
        server.send(fd, json.dumps(server.get_client_info(fd)) + "\n")
    elif command == b"close":
        server.close(fd)
    elif command.startswith(b"bind "):
        server.send(fd, f"bound {server.bind(fd, int(command[5:]))}\n")
    elif command == b"flood":
        sent = 0
        while sent < 1000 and server.send(fd, b"x" * 65536):
            sent += 1
        say("flood stopped after", sent)
    else:
        server.send(fd, b"Server: " + command + b"\n")


if length_port:
    framed = server.listen("127.0.0.1", length_port, SOCK_TCP | SSL)
    framed.set(
        {
            "open_length_check": True,
            "package_length_type": "N",
            "package_length_offset": 0,
            "package_body_offset": 4,
            "ssl_cert_file": settings["ssl_cert_file"],
            "ssl_key_file": settings["ssl_key_file"],
        }
    )

    @framed.on("receive")
    def on_packet(server, fd, reactor_id, packet):
        body = packet[4:]
        server.send(fd, struct.pack("!I", len(body) + 1) + b">" + body)


server.start()
