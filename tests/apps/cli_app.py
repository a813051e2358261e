"""An application for the command-line tests: a module-level server, started by ``pyswoole``."""

import os

from pyswoole import Atomic, Server

VERSION = "v1"
counter = Atomic(0)  # shared by every worker, and kept across reloads

server = Server("127.0.0.1", int(os.environ["APP_PORT"]))
server.set({"worker_num": 2, "pid_file": os.environ["APP_PID_FILE"], "log_file": os.environ["APP_LOG_FILE"]})


@server.on("receive")
def on_receive(server, fd, reactor_id, data):
    server.send(fd, f"{VERSION} {counter.add(1)} {server.worker_id}".encode())


if __name__ == "__main__":
    server.start()
