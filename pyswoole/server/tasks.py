"""Task workers: ``server.task()`` in a worker, the queue in the manager, the ``task`` event in a
task worker, and the result back to the dispatching worker.

Path of one task (IPC kinds below, payload layouts in ``docs/architecture.md``):

    worker --TASK--> manager (queue, FIFO) --TASK--> idle task worker
    task worker --FINISH--> dispatching worker        task worker --IDLE--> manager

The manager keeps the only queue, so queued tasks survive a task-worker reload, and it knows which
task each task worker runs, so a task worker that dies mid-task is reported to the dispatching
worker as a ``TaskError`` instead of leaving it waiting. The queue is bounded by
``task_queue_size``, counted in shared memory so that ``task()`` can refuse at once.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import os
import pickle
import signal
import struct
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyswoole.coroutine.runner import spawn
from pyswoole.process.ipc import Mailbox

if TYPE_CHECKING:
    from pyswoole.process.supervisor import Child, Supervisor
    from pyswoole.server.server import Server

log = logging.getLogger("pyswoole")

MSG_TASK = 10  # TASK: !iiii src pid, src worker id, task id, wanted task worker (-1: any), then a pickle
MSG_FINISH = 11  # FINISH: !iB task id, status (0 result, 1 error), then a pickle of the result or message
MSG_IDLE = 12  # IDLE: !i task worker id (sent on start and after each task)
TASK_HEAD = struct.Struct("!iiii")
FINISH_HEAD = struct.Struct("!iB")
TASK_WORKER = struct.Struct("!i")
STATUS_OK = 0
STATUS_ERROR = 1
STATUS_EMPTY = 2  # the task ended without a result: no finish event


class TaskError(RuntimeError):
    """A task could not produce a result (its task worker died, or the task raised)."""


def _dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _result(status: int, value: Any) -> Any:
    if status == STATUS_ERROR:
        return TaskError(value)
    return None if status == STATUS_EMPTY else value


def caller_is_coroutine(depth: int = 2) -> bool:
    """True when the function ``depth`` frames up is an ``async def``: the caller will await."""
    return bool(sys._getframe(depth).f_code.co_flags & inspect.CO_COROUTINE)


# -- manager side ----------------------------------------------------------------------------------
class TaskDispatcher:
    """The manager's task queue: FIFO to idle task workers, failures reported to the sender."""

    def __init__(self, server: Server, supervisor: Supervisor, mailbox: Mailbox):
        self.server = server
        self.supervisor = supervisor
        self.queue: collections.deque[tuple[int, bytes]] = collections.deque()
        self.idle: dict[int, int] = {}  # task worker id -> pid, for current, idle task workers
        self.running: dict[int, tuple[int, bytes]] = {}  # task worker pid -> (sender pid, task)
        self.mailbox = mailbox
        mailbox.handler = self._on_message
        supervisor.watch(self.mailbox.sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        for kind, sender, payload, _ in self.mailbox.pending():
            self._on_message(kind, sender, payload, [])

    def _on_message(self, kind: int, sender: int, payload: bytes, fds: list[int]) -> None:
        if kind == MSG_TASK:
            self.queue.append((sender, payload))
        elif kind == MSG_IDLE:
            task_worker_id = TASK_WORKER.unpack(payload)[0]
            self.running.pop(sender, None)
            if self.supervisor.pid_of("task", task_worker_id) == sender:
                self.idle[task_worker_id] = sender
        self.dispatch()

    def dispatch(self) -> None:
        while self.queue and self.idle:
            sender, payload = self.queue[0]
            wanted = TASK_HEAD.unpack_from(payload)[3]
            task_worker_id = self._pick(wanted)
            if task_worker_id is None:
                return
            pid = self.idle.pop(task_worker_id)
            if self.supervisor.pid_of("task", task_worker_id) != pid:
                continue  # replaced meanwhile (reload): wait for the new one's IDLE
            self.queue.popleft()
            self.server._registry.tasks_queued.sub(1)
            if self.mailbox.send(pid, MSG_TASK, payload):
                self.running[pid] = (sender, payload)
            else:
                self.queue.appendleft((sender, payload))
                self.server._registry.tasks_queued.add(1)

    def _pick(self, wanted: int) -> int | None:
        if wanted >= 0:
            return wanted if wanted in self.idle else None
        return next(iter(self.idle))

    def task_worker_exited(self, child: Child, code: int, signo: int) -> None:
        self.idle.pop(child.id, None)
        self.mailbox.forget(child.pid)
        lost = self.running.pop(child.pid, None)
        if lost is None:
            return
        sender, payload = lost
        task_id = TASK_HEAD.unpack_from(payload)[2]
        reason = f"task worker {child.id} (pid {child.pid}) died with code {code}, signal {signo}"
        log.error("task %d lost: %s", task_id, reason)
        self.mailbox.send(sender, MSG_FINISH, FINISH_HEAD.pack(task_id, STATUS_ERROR), _dumps(reason))


# -- task worker side ------------------------------------------------------------------------------
class TaskObject:
    """What the ``task`` event receives with ``task_enable_coroutine`` (Swoole's ``Server\\Task``)."""

    __slots__ = ("_runner", "data", "dispatch_time", "id", "worker_id")

    def __init__(self, runner: TaskWorker, task_id: int, worker_id: int, data: Any):
        self._runner = runner
        self.id = task_id
        self.worker_id = worker_id
        self.data = data
        self.dispatch_time = time.time()

    def finish(self, result: Any) -> bool:
        return self._runner.finish(result)


class TaskWorker:
    """The runtime of one task worker process: one task at a time, results straight back."""

    def __init__(self, server: Server, task_worker_id: int):
        self.server = server
        self.task_worker_id = task_worker_id
        self.worker_id = server.setting["worker_num"] + task_worker_id
        self.mailbox: Mailbox | None = None
        self.inbox: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self.current: tuple[int, int] | None = None  # (sender pid, task id) of the running task
        self.finished = False
        self.stopping = False
        self.done = 0

    def run(self) -> int:
        from pyswoole.server.worker import new_event_loop

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()
        return 0

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop)
        loop.add_signal_handler(signal.SIGRTMIN, self.server._reopen_logs)
        self.mailbox = Mailbox(self.server._namespace, self._on_message)
        self.mailbox.attach(loop)
        callback = self.server.callbacks.get("worker_start")
        if callback is not None:
            spawn(callback, self.server, self.worker_id, name="worker_start")
        max_request = self.server.setting["task_max_request"]
        self._announce_idle()
        while not self.stopping or not self.inbox.empty():
            sender, payload = await self.inbox.get()
            if sender == 0:
                continue  # the stop wake-up
            await self._run_task(sender, payload)
            self.done += 1
            if max_request and self.done >= max_request:
                self.stopping = True
            if not self.stopping:
                self._announce_idle()
        callback = self.server.callbacks.get("worker_stop")
        if callback is not None:
            spawn(callback, self.server, self.worker_id, name="worker_stop")
        self.mailbox.close()

    def _stop(self) -> None:
        self.stopping = True
        self.inbox.put_nowait((0, b""))

    def _announce_idle(self) -> None:
        assert self.mailbox is not None
        self.mailbox.send(self.server.manager_pid, MSG_IDLE, TASK_WORKER.pack(self.task_worker_id))

    def _on_message(self, kind: int, sender: int, payload: bytes, fds: list[int]) -> None:
        if kind == MSG_TASK:
            self.inbox.put_nowait((sender, payload))

    async def _run_task(self, manager: int, payload: bytes) -> None:
        src_pid, src_worker_id, task_id, _ = TASK_HEAD.unpack_from(payload)
        self.current = (src_pid, task_id)
        self.finished = False
        callback = self.server.callbacks.get("task")
        try:
            data = pickle.loads(payload[TASK_HEAD.size :])
            if callback is None:
                raise TaskError("no 'task' callback is registered")
            if self.server.setting["task_enable_coroutine"]:
                result = callback(self.server, TaskObject(self, task_id, src_worker_id, data))
            else:
                result = callback(self.server, task_id, src_worker_id, data)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            log.exception("task %d from worker %d raised", task_id, src_worker_id)
            self._reply(STATUS_ERROR, f"{type(exc).__name__}: {exc}")
        else:
            if not self.finished:
                self._reply(STATUS_OK if result is not None else STATUS_EMPTY, result)
        self.current = None

    def finish(self, result: Any) -> bool:
        """Send the running task's result to the worker that dispatched it."""
        if self.current is None or self.finished:
            return False
        return self._reply(STATUS_OK, result)

    def _reply(self, status: int, value: Any) -> bool:
        assert self.current is not None and self.mailbox is not None
        self.finished = True
        src_pid, task_id = self.current
        return self.mailbox.send(src_pid, MSG_FINISH, FINISH_HEAD.pack(task_id, status), _dumps(value))


# -- worker side -----------------------------------------------------------------------------------
class TaskClient:
    """``task``/``taskwait``/``task_co`` for a worker: sends tasks, routes results back."""

    def __init__(self, server: Server, mailbox: Mailbox, worker_id: int):
        self.server = server
        self.mailbox = mailbox
        self.worker_id = worker_id
        self.next_id = 0
        self.callbacks: dict[int, Callable[..., Any]] = {}
        self.waiters: dict[int, asyncio.Future] = {}
        self.blocking_results: dict[int, tuple[int, Any]] = {}
        self.blocking_wanted: set[int] = set()

    def send(self, data: Any, dst_task_worker: int = -1) -> int | bool:
        registry = self.server._registry
        limit = self.server.setting["task_queue_size"]
        if registry.tasks_queued.add(1) > limit:
            registry.tasks_queued.sub(1)
            log.warning("task refused: %d tasks already queued (task_queue_size)", limit)
            return False
        task_id = self.next_id
        self.next_id += 1
        head = TASK_HEAD.pack(os.getpid(), self.worker_id, task_id, dst_task_worker)
        try:
            body = _dumps(data)
        except Exception:
            registry.tasks_queued.sub(1)
            raise
        if not self.mailbox.send(self.server.manager_pid, MSG_TASK, head, body):
            registry.tasks_queued.sub(1)
            log.warning("task refused: the manager is not reachable")
            return False
        return task_id

    def on_finish(self, payload: bytes) -> None:
        task_id, status = FINISH_HEAD.unpack_from(payload)
        value = pickle.loads(payload[FINISH_HEAD.size :])
        if task_id in self.blocking_wanted:
            self.blocking_results[task_id] = (status, value)
            return
        result = _result(status, value)
        waiter = self.waiters.pop(task_id, None)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(result)
            return
        callback = self.callbacks.pop(task_id, None) or self.server.callbacks.get("finish")
        if status == STATUS_EMPTY:
            return
        if callback is None:
            log.warning("result of task %d dropped: no finish callback", task_id)
            return
        spawn(callback, self.server, task_id, result, name="finish")

    def wait_blocking(self, task_ids: list[int], timeout: float) -> dict[int, Any]:
        """Block (no event loop turn) until these tasks finish or ``timeout``; other messages are
        kept and handled afterwards, in order."""
        self.blocking_wanted = set(task_ids)
        deadline = time.monotonic() + timeout
        deferred = []
        try:
            while not all(t in self.blocking_results for t in task_ids):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                message = self.mailbox.receive(remaining)
                if message is None:
                    break
                kind, _, payload, _ = message
                if kind == MSG_FINISH and FINISH_HEAD.unpack_from(payload)[0] in self.blocking_wanted:
                    self.on_finish(payload)
                else:
                    deferred.append(message)
        finally:
            self.blocking_wanted = set()
            handler = self.mailbox.handler
            loop = asyncio.get_event_loop()
            for message in deferred:
                loop.call_soon(handler, *message)  # type: ignore[misc]
        results = {}
        for task_id in task_ids:
            if task_id in self.blocking_results:
                status, value = self.blocking_results.pop(task_id)
                results[task_id] = _result(status, value)
        return results

    async def wait_async(self, task_ids: list[int], timeout: float) -> dict[int, Any]:
        loop = asyncio.get_running_loop()
        futures = {}
        for task_id in task_ids:
            future = futures[task_id] = loop.create_future()
            self.waiters[task_id] = future
        done, _ = await asyncio.wait(futures.values(), timeout=timeout)
        results = {}
        for task_id, future in futures.items():
            self.waiters.pop(task_id, None)
            if future in done:
                results[task_id] = future.result()
        return results
