"""A server driven by text commands, for the engine's tests.

Usage: command_server.py PORT_SPEC [SETTINGS_JSON]; PORT_SPEC is ``tcp:PORT``, ``udp:PORT``,
``unix:PATH`` or ``unixdgram:PATH``. Each received chunk is one command; unknown text is echoed as
``Server: <data>``. Events are printed, one line each, for the test to read.
"""

import asyncio
import gc
import json
import os
import sys

from pyswoole import BASE, PROCESS, SOCK_TCP, SOCK_UDP, SOCK_UNIX_DGRAM, SOCK_UNIX_STREAM, Server

kind, _, address = sys.argv[1].partition(":")
settings = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
sock_type = {"tcp": SOCK_TCP, "udp": SOCK_UDP, "unix": SOCK_UNIX_STREAM, "unixdgram": SOCK_UNIX_DGRAM}[kind]
host, port = (address, 0) if kind.startswith("unix") else ("127.0.0.1", int(address))
extra = settings.pop("_listen", None)
mode = PROCESS if settings.pop("_mode", "base") == "process" else BASE

server = Server(host, port, mode=mode, sock_type=sock_type)
server.set({"worker_num": 2, **settings})


ballast = b""


def say(*parts):
    """One line in one write: several processes share the output file."""
    sys.stdout.write(" ".join(map(str, parts)) + "\n")
    sys.stdout.flush()


@server.on("start")
def on_start(server):
    say("start", server.master_pid)


@server.on("worker_start")
def on_worker_start(server, worker_id):
    say("worker_start", worker_id, os.getpid())


@server.on("worker_stop")
def on_worker_stop(server, worker_id):
    say("worker_stop", worker_id)


@server.on("worker_error")
def on_worker_error(server, worker_id, worker_pid, exit_code, signal):
    say("worker_error", worker_id, worker_pid, exit_code, signal)


@server.on("shutdown")
def on_shutdown(server):
    say("shutdown")


@server.on("before_reload")
def on_before_reload(server):
    say("before_reload")


@server.on("after_reload")
def on_after_reload(server):
    say("after_reload")


@server.on("connect")
def on_connect(server, fd, reactor_id):
    say("connect", fd, reactor_id)


@server.on("close")
def on_close(server, fd, reactor_id):
    say("close", fd, reactor_id)


@server.on("buffer_full")
def on_buffer_full(server, fd):
    say("buffer_full", fd)


@server.on("buffer_empty")
def on_buffer_empty(server, fd):
    say("buffer_empty", fd)


@server.on("pipe_message")
def on_pipe_message(server, src_worker_id, message):
    say("pipe_message", server.worker_id, src_worker_id, json.dumps(message))


@server.on("packet")
def on_packet(server, data, client_info):
    server.sendto(client_info["address"], client_info["port"], b"Server: " + data)


def gc_state():
    return {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(), "enabled": gc.isenabled()}


async def answer(server, fd, data):
    command, *args = data.decode(errors="replace").split()
    reply = None
    if command == "whoami":
        reply = f"{server.worker_id} {os.getpid()}"
    elif command == "info":
        reply = json.dumps(server.get_client_info(int(args[0]) if args else fd))
    elif command == "conns":
        reply = json.dumps(list(server.connections))
    elif command == "send":
        reply = str(server.send(int(args[0]), " ".join(args[1:]).encode()))
    elif command == "close":
        reply = str(server.close(int(args[0])))
    elif command == "exists":
        reply = str(server.exists(int(args[0])))
    elif command == "bind":
        reply = str(server.bind(int(args[0]), int(args[1])))
    elif command == "stats":
        reply = json.dumps(server.stats())
    elif command == "gc":
        reply = json.dumps(gc_state())
    elif command == "pipe":
        reply = str(server.send_message({"text": args[1]}, int(args[0])))
    elif command == "boom":
        raise RuntimeError("boom requested")
    elif command == "sleep":
        await asyncio.sleep(float(args[0]))
        reply = "slept"
    elif command == "flood":
        chunk = b"x" * 65536
        sent = 0
        while server.send(fd, chunk):
            sent += 1
        reply = None
        say("flood_stopped", sent)
    elif command == "pause":
        reply = str(server.pause(int(args[0])))
    elif command == "resume":
        reply = str(server.resume(int(args[0])))
    elif command == "stopworker":
        reply = str(server.stop(int(args[0])))
    elif command == "status":
        reply = json.dumps(server.get_worker_status(int(args[0]) if args else -1))
    elif command == "grow":
        global ballast
        ballast = bytearray(int(args[0]) * 1024 * 1024)
        reply = "grown"
    elif command == "reload":
        server.reload()
        reply = "reloading"
    elif command == "shutdown":
        server.shutdown()
        reply = "bye"
    if reply is not None:
        server.send(fd, reply.encode())


@server.on("receive")
async def on_receive(server, fd, reactor_id, data):
    if data[:1].isalpha() and data.split()[0].decode(errors="replace") in {
        "whoami",
        "info",
        "conns",
        "send",
        "close",
        "exists",
        "bind",
        "stats",
        "gc",
        "pipe",
        "boom",
        "sleep",
        "flood",
        "shutdown",
        "reload",
        "stopworker",
        "status",
        "grow",
        "pause",
        "resume",
    }:
        await answer(server, fd, data)
    else:
        server.send(fd, b"Server: " + data)


if extra:
    port2 = server.listen("127.0.0.1", extra["port"], SOCK_TCP)
    port2.set(extra["settings"])

server.start()
