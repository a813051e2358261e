"""Port of ``callback.php``: every callback of a ``Server``, registered.

Run: ``python3 examples/callback.py [--host 0.0.0.0] [--port 9501] [--trace]``, then
``nc 127.0.0.1 9501``: connecting prints ``onConnect``, each chunk sent prints ``onReceive`` (the
server sends nothing back), disconnecting prints ``onClose``. ``kill -USR1 <master>`` reloads both
workers, printing ``worker stop`` twice; ``kill -TERM <master>`` prints ``worker stop`` twice and
the server exits.

As in the original, runtime hooks are on (``pyswoole.runtime.enable_coroutine()``, Swoole's
``Runtime::enableCoroutine(true)``), there are 2 workers and no task workers, and most callbacks
print nothing. ``--trace`` makes every callback print its name (and worker id), which shows the
order of events:

- ``start`` (master), ``manager_start`` (manager) and ``worker_start`` (each worker) run in
  different processes, concurrently: their relative order is not fixed.
- ``connect``, ``receive`` and ``close`` run in the worker that owns the connection; ``task`` runs
  only in task workers, ``finish`` in the worker that called ``task()``.
- On SIGTERM: ``worker_stop`` in each worker, then ``manager_stop``, then ``shutdown`` in the
  master. ``shutdown`` does not run when the master is killed with SIGKILL.
- ``reactor_id`` in ``close`` is ``-1`` when the server closed the connection.
- UDP ports have no ``connect``/``close``; ``packet`` never fires on this TCP-only server.

Differences from the original:

- The original's ``Request`` callback (``<h1>a</h1>``) does not exist on a plain ``Server``: the
  ``request`` event belongs to ``pyswoole.http.Server``, and ``on("request", ...)`` here fails at
  once with a clear error (Swoole accepted it and never called it).
- ``task`` and ``finish`` are registered as in the original; they are never called because the
  server has no task workers (``task_worker_num`` 0), exactly like Swoole.
- ``worker_exit`` (commented out in the original), ``buffer_full``, ``buffer_empty`` and the
  manager's ``before_reload``/``after_reload`` (around a reload) are registered too, so this file
  lists every event a ``Server`` has (``Server.EVENTS``).
"""

import argparse

from pyswoole import Server
from pyswoole.runtime import enable_coroutine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--trace", action="store_true", help="every callback prints its name")
    args = parser.parse_args()

    enable_coroutine()
    server = Server(args.host, args.port)
    server.set({"worker_num": 2})

    def trace(*words: object) -> None:
        if args.trace:
            print("trace:", *words, flush=True)

    @server.on("start")
    def on_start(server):
        trace("start")

    @server.on("manager_start")
    def on_manager_start(server):
        trace("manager_start")

    @server.on("worker_start")
    def on_worker_start(server, worker_id):
        trace("worker_start", worker_id)

    @server.on("worker_stop")
    def on_worker_stop(server, worker_id):
        trace("worker_stop", worker_id)
        print("worker stop", flush=True)

    @server.on("worker_exit")
    def on_worker_exit(server, worker_id):
        trace("worker_exit", worker_id)

    @server.on("manager_stop")
    def on_manager_stop(server):
        trace("manager_stop")

    @server.on("before_reload")
    def on_before_reload(server):
        trace("before_reload")

    @server.on("after_reload")
    def on_after_reload(server):
        trace("after_reload")

    @server.on("worker_error")
    def on_worker_error(server, worker_id, worker_pid, exit_code, signal):
        trace("worker_error", worker_id, worker_pid, exit_code, signal)

    @server.on("connect")
    def on_connect(server, fd, reactor_id):
        trace("connect", server.worker_id, fd)
        print("onConnect", flush=True)

    @server.on("receive")
    def on_receive(server, fd, reactor_id, data):
        trace("receive", server.worker_id, fd)
        print("onReceive", flush=True)

    @server.on("packet")
    def on_packet(server, data, client_info):
        trace("packet", server.worker_id)
        print("onPacket", flush=True)

    @server.on("close")
    def on_close(server, fd, reactor_id):
        trace("close", server.worker_id, fd, reactor_id)
        print("onClose", flush=True)

    @server.on("pipe_message")
    def on_pipe_message(server, src_worker_id, message):
        trace("pipe_message", server.worker_id, src_worker_id)

    @server.on("buffer_full")
    def on_buffer_full(server, fd):
        trace("buffer_full", fd)

    @server.on("buffer_empty")
    def on_buffer_empty(server, fd):
        trace("buffer_empty", fd)

    @server.on("task")
    def on_task(server, task_id, src_worker_id, data):
        trace("task", task_id, src_worker_id)

    @server.on("finish")
    def on_finish(server, task_id, result):
        trace("finish", task_id)

    @server.on("shutdown")
    def on_shutdown(server):
        trace("shutdown")

    server.start()


if __name__ == "__main__":
    main()
