"""Port of ``taskS.php``: every received chunk becomes an asynchronous task.

Run: ``python3 examples/taskS.py [--host 127.0.0.1] [--port 9501] [--sleep 3]``, then
``nc 127.0.0.1 9501`` and type ``hello``. The client gets ``分发一个异步任务: id=<task_id>`` at once;
about 3 s later the server prints ``一个新的异步任务：[id=<task_id>]`` from a task worker and
``异步任务-<task_id> 执行完成：hello -> OK`` from the worker that dispatched it. Task ids count from 0
in each worker, as in Swoole. 4 task workers run 4 tasks at once; a 5th waits for a free one.
"""

import argparse
import time

from pyswoole import Server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9501)
    parser.add_argument("--sleep", type=float, default=3.0, help="seconds each task takes")
    args = parser.parse_args()

    server = Server(args.host, args.port)
    server.set({"worker_num": 4, "task_worker_num": 4})

    @server.on("receive")
    def on_receive(server, fd, reactor_id, data):
        task_id = server.task(data)
        print(f"分发一个异步任务: id={task_id}", flush=True)
        server.send(fd, f"分发一个异步任务: id={task_id}\n")

    @server.on("task")
    def on_task(server, task_id, src_worker_id, data):
        time.sleep(args.sleep)  # a blocking job: task workers exist for exactly this
        print(f"一个新的异步任务：[id={task_id}]", flush=True)
        server.finish(data.decode(errors="replace") + " -> OK")

    @server.on("finish")
    def on_finish(server, task_id, data):
        print(f"异步任务-{task_id} 执行完成：{data}", flush=True)

    server.start()


if __name__ == "__main__":
    main()
