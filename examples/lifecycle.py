"""Port of ``lifecycle.php``: the four life-cycle layers of a server's state.

Run: ``python3 examples/lifecycle.py [--host 0.0.0.0] [--port 9501] [--workers 2]``, then
``nc 127.0.0.1 9501`` and type anything: every chunk is answered with ``aaaa``. The server prints
``Worker <id> started`` for each worker (in any order), ``Client <fd> connect`` and
``Client <fd> closed``.

The layers, and where each lives in this file:

- **Program-global**: objects created before ``server.start()`` (``PROGRAM_GLOBAL`` below). Every
  worker gets a copy at fork time; they live until shutdown and a reload does not refresh them
  (a reload forks new workers from the same manager, with the same copy).
- **Process-global**: state a worker sets up in ``worker_start`` (``process_state``). It is created
  again in every new worker, so a reload (``kill -USR1 <master>``) rebuilds it.
- **Session**: from ``connect`` (or the first ``receive``) to ``close`` of one connection.
- **Request**: from ``receive`` until the reply is sent.

The original's ``$a = 'A'`` was unused; here the process-global layer counts the chunks the worker
has answered, so the difference between the layers can be seen with ``--verbose``.
"""

import argparse

from pyswoole import Server

PROGRAM_GLOBAL = "A"  # created before start(): copied into every worker, not refreshed by reload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--verbose", action="store_true", help="print each layer's state per request")
    args = parser.parse_args()

    server = Server(args.host, args.port)
    server.set({"worker_num": args.workers})
    process_state: dict[str, int] = {}  # process-global: filled in worker_start
    sessions: dict[int, int] = {}  # session layer: fd -> chunks received on that connection

    @server.on("worker_start")
    def on_worker_start(server, worker_id):
        process_state["answered"] = 0
        print(f"Worker {worker_id} started", flush=True)

    @server.on("connect")
    def on_connect(server, fd, reactor_id):
        sessions[fd] = 0
        print(f"Client {fd} connect", flush=True)

    @server.on("receive")
    def on_receive(server, fd, reactor_id, data):
        sessions[fd] = sessions.get(fd, 0) + 1  # request layer: this call and its reply
        process_state["answered"] += 1
        server.send(fd, b"aaaa\n")
        if args.verbose:
            print(
                f"program={PROGRAM_GLOBAL} worker {server.worker_id} answered={process_state['answered']} "
                f"fd {fd} chunks={sessions[fd]}",
                flush=True,
            )

    @server.on("close")
    def on_close(server, fd, reactor_id):
        sessions.pop(fd, None)
        print(f"Client {fd} closed", flush=True)

    server.start()


if __name__ == "__main__":
    main()
