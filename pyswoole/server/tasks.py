"""Task workers: ``server.task()`` in a worker, the ``task`` event in a task worker, the result
straight back to the dispatching worker.

Path of one task (IPC kinds below, payload layouts in ``docs/architecture.md``):

    worker --TASK--> idle task worker --FINISH--> worker            (the usual path: 2 messages)
    worker --TASK--> manager queue --TASK--> task worker --FINISH--> worker   (all were busy)

Each task worker has an ``Atomic`` state in shared memory, 0 idle or 1 taken. A worker claims an
idle task worker with a compare-and-set and sends it the task directly; when none is idle, the
task goes to the manager's FIFO queue (bounded by ``task_queue_size``, counted in shared memory so
``task()`` refuses at once), and a task worker that finds the queue non-empty asks the manager for
work instead of going idle. The queue lives in the manager, which outlives task workers: a reload
loses no queued task. Each worker remembers which task worker runs each of its tasks; when one dies
the manager tells every worker, and its lost tasks end with a ``TaskError`` instead of hanging.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import math
import os
import pickle
import signal
import struct
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyswoole.coroutine import runner
from pyswoole.coroutine.runner import spawn
from pyswoole.process.ipc import Mailbox
from pyswoole.server.settings import tune_gc

if TYPE_CHECKING:
    from pyswoole.process.supervisor import Child, Supervisor
    from pyswoole.server.server import Server

log = logging.getLogger("pyswoole")

MSG_TASK = 10  # TASK: !iiiiB src pid, src worker id, task id, wanted task worker (-1: any), format; data
MSG_FINISH = 11  # FINISH: !iBB task id, status (0 result, 1 error, 2 none), format; data
MSG_IDLE = 12  # IDLE: !i task worker id: "I am free and the queue is not empty: give me a task"
MSG_TASK_WORKER_GONE = 13  # manager -> workers: !i pid of a task worker that exited
PID = struct.Struct("!i")
IDLE, TAKEN = 0, 1
TASK_HEAD = struct.Struct("!iiiiB")
FINISH_HEAD = struct.Struct("!iBB")
TASK_WORKER = struct.Struct("!i")
STATUS_OK = 0
STATUS_ERROR = 1
STATUS_EMPTY = 2  # the task ended without a result: no finish event
FORMAT_PICKLE, FORMAT_BYTES, FORMAT_STR = 0, 1, 2  # how the data after a TASK or FINISH head is encoded
# A blocking taskwait polls this long for its result before it sleeps: the result of a short task
# then needs no wake-up, which costs ~20 µs between CPUs of a virtual machine.
TASKWAIT_SPIN = 100e-6
# A task worker that finished a task polls this long for the next one before it sleeps in its event
# loop (the same wake-up saved on the other side of a back-to-back taskwait).
TASK_WORKER_SPIN = 100e-6


class TaskError(RuntimeError):
    """A task could not produce a result (its task worker died, or the task raised)."""


def _encode(value: Any) -> tuple[int, bytes]:
    """(format, data): bytes go as they are, str as UTF-8, anything else as a pickle."""
    kind = type(value)
    if kind is bytes:
        return FORMAT_BYTES, value
    if kind is str:
        return FORMAT_STR, value.encode("utf-8", "surrogatepass")
    return FORMAT_PICKLE, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _decode(data_format: int, payload: bytes, offset: int) -> Any:
    """The value encoded in ``payload`` from ``offset`` on."""
    if data_format == FORMAT_BYTES:
        return payload[offset:]
    if data_format == FORMAT_STR:
        return str(memoryview(payload)[offset:], "utf-8", "surrogatepass")
    return pickle.loads(memoryview(payload)[offset:])


def _result(status: int, value: Any) -> Any:
    if status == STATUS_ERROR:
        return TaskError(value)
    return None if status == STATUS_EMPTY else value


def caller_is_coroutine(depth: int = 2) -> bool:
    """True when the function ``depth`` frames up is an ``async def``: the caller will await."""
    return bool(sys._getframe(depth).f_code.co_flags & inspect.CO_COROUTINE)


# -- manager side ----------------------------------------------------------------------------------
class TaskDispatcher:
    """The manager's part: the overflow queue, and the news of task workers that died."""

    def __init__(self, server: Server, supervisor: Supervisor, mailbox: Mailbox):
        self.server = server
        self.registry = server._registry
        self.supervisor = supervisor
        self.queue: collections.deque[tuple[int, bytes]] = collections.deque()
        self.running: dict[int, tuple[int, bytes]] = {}  # task worker pid -> (sender pid, task) given by us
        self.mailbox = mailbox
        mailbox.handler = self._on_message
        supervisor.watch(mailbox.sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        for message in self.mailbox.pending():
            self._on_message(*message)

    def _on_message(self, kind: int, sender: int, payload: bytes, fds: list[int]) -> None:
        if kind == MSG_TASK:
            task_worker_id = claim_task_worker(self.registry, TASK_HEAD.unpack_from(payload)[3])
            if task_worker_id is None:
                self.queue.append((sender, payload))
            else:
                self._give(task_worker_id, sender, payload)
        elif kind == MSG_IDLE:
            task_worker_id = TASK_WORKER.unpack(payload)[0]
            self.running.pop(sender, None)
            if self.queue:
                self._give(task_worker_id, *self.queue.popleft())
            else:
                self.registry.task_states[task_worker_id].set(IDLE)

    def _give(self, task_worker_id: int, sender: int, payload: bytes) -> None:
        """Send a task to a task worker we hold (state TAKEN); requeue it if that one is gone."""
        self.registry.tasks_queued.sub(1)
        pid = self.supervisor.pid_of("task", task_worker_id)
        if pid is not None and self.mailbox.send(pid, MSG_TASK, payload):
            self.running[pid] = (sender, payload)
            return
        self.registry.tasks_queued.add(1)
        self.queue.appendleft((sender, payload))

    def task_worker_exited(self, child: Child, code: int, signo: int) -> None:
        self.mailbox.forget(child.pid)
        reason = f"task worker {child.id} (pid {child.pid}) died with code {code}, signal {signo}"
        lost = self.running.pop(child.pid, None)
        if lost is not None:
            sender, payload = lost
            task_id = TASK_HEAD.unpack_from(payload)[2]
            head = FINISH_HEAD.pack(task_id, STATUS_ERROR, FORMAT_STR)
            self.mailbox.send(sender, MSG_FINISH, head, reason.encode())
        for worker_id in range(self.server.setting["worker_num"]):  # their tasks there are lost
            row = self.registry.worker(worker_id)
            if row and row["pid"]:
                self.mailbox.send(row["pid"], MSG_TASK_WORKER_GONE, PID.pack(child.pid), reason.encode())


def claim_task_worker(registry: Any, wanted: int = -1) -> int | None:
    """Take an idle task worker (compare-and-set of its state); None if all are busy."""
    states = registry.task_states
    if wanted >= 0:
        return wanted if wanted < len(states) and states[wanted].cmpset(IDLE, TAKEN) else None
    count = len(states)
    start = registry.task_cursor.add(1) % count
    for offset in range(count):
        index = (start + offset) % count
        if states[index].cmpset(IDLE, TAKEN):
            return index
    return None


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
        self.registry = server._registry
        self.task_worker_id = task_worker_id
        self.state = self.registry.task_states[task_worker_id]
        self.worker_id = server.setting["worker_num"] + task_worker_id
        self.coroutine_tasks = server.setting["task_enable_coroutine"]
        self.max_request = server.setting["task_max_request"]
        self.mailbox: Mailbox | None = None
        self.current: tuple[int, int] | None = None  # (sender pid, task id) of the running task
        self.finished = False
        self.stopping = False
        self.done = 0
        self.backlog: collections.deque[bytes] = collections.deque()
        self.running = False
        self._stopped: asyncio.Future | None = None

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
        self._stopped = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, self._stop)
        loop.add_signal_handler(signal.SIGRTMIN, self.server._reopen_logs)
        self.mailbox = Mailbox(self.server._namespace, self._on_message)
        self.mailbox.attach(loop, one_message_per_wakeup=True)  # one task at a time
        self.registry.set_worker(self.worker_id, pid=os.getpid(), status=2, start_time=int(time.time()))
        callback = self.server.callbacks.get("worker_start")
        if callback is not None:
            spawn(callback, self.server, self.worker_id, name="worker_start")
        tune_gc(self.server.setting)
        self._become_idle()
        await self._stopped
        while self.running:  # the task in hand finishes first
            await asyncio.sleep(0.01)
        callback = self.server.callbacks.get("worker_stop")
        if callback is not None:
            spawn(callback, self.server, self.worker_id, name="worker_stop")
        self.mailbox.close()

    def _stop(self) -> None:
        """Stop after the current task; tasks already sent here still run (briefly, below)."""
        if self.stopping:
            return
        self.stopping = True
        asyncio.get_running_loop().call_later(0.1, self._end)

    def _end(self) -> None:
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    def _become_idle(self) -> None:
        """Free again: ask the manager for queued work, or mark this task worker idle."""
        if self.stopping:
            return
        assert self.mailbox is not None
        queued = self.registry.tasks_queued
        if queued.get() <= 0:
            self.state.set(IDLE)
            # a task may have been queued meanwhile: take ourselves back if nobody else did
            if queued.get() <= 0 or not self.state.cmpset(IDLE, TAKEN):
                return
        self.mailbox.send(self.server.manager_pid, MSG_IDLE, TASK_WORKER.pack(self.task_worker_id))

    def _on_message(self, kind: int, sender: int, payload: bytes, fds: list[int]) -> None:
        if kind != MSG_TASK:
            return
        self.backlog.append(payload)
        if not self.running:
            self._next()

    def _next(self) -> None:
        """Run the tasks in hand, one at a time, until one suspends (its end resumes the rest);
        then wait briefly for the next task without sleeping (see ``TASK_WORKER_SPIN``)."""
        while self.backlog:
            self.running = True
            task = self._start_task(self.backlog.popleft())
            if task is not None:
                task.add_done_callback(self._resume)
                return
            self.current = None
            if not self.backlog and not self.stopping:
                self._take_next_task()
        self.running = False

    def _take_next_task(self) -> None:
        """A worker that got a result often sends its next task at once: take it without the
        wake-up that sleeping in the event loop would cost."""
        assert self.mailbox is not None
        message = self.mailbox.receive(TASK_WORKER_SPIN, TASK_WORKER_SPIN)
        if message is not None:
            self._on_message(*message)  # (running: it only joins the backlog)

    def _resume(self, _: asyncio.Task) -> None:
        self.current = None
        self._next()

    def _start_task(self, payload: bytes) -> asyncio.Task | None:
        """Run one task; an async one runs in place until it first suspends, and only then
        becomes an asyncio Task (returned, so that the next task waits for it)."""
        src_pid, src_worker_id, task_id, _, data_format = TASK_HEAD.unpack_from(payload)
        self.current = (src_pid, task_id)
        self.finished = False
        callback = self.server.callbacks.get("task")
        try:
            data = _decode(data_format, payload, TASK_HEAD.size)
            if callback is None:
                raise TaskError("no 'task' callback is registered")
            if self.coroutine_tasks:
                result = callback(self.server, TaskObject(self, task_id, src_worker_id, data))
            else:
                result = callback(self.server, task_id, src_worker_id, data)
        except Exception as exc:
            self._failed(task_id, src_worker_id, exc)
            return None
        if hasattr(result, "__await__"):
            return runner.start(self._finish_async(result, task_id, src_worker_id), name="task")
        self._ended(STATUS_OK if result is not None else STATUS_EMPTY, result)
        return None

    async def _finish_async(self, awaitable: Any, task_id: int, src_worker_id: int) -> None:
        try:
            result = await awaitable
        except Exception as exc:
            self._failed(task_id, src_worker_id, exc)
        else:
            self._ended(STATUS_OK if result is not None else STATUS_EMPTY, result)

    def _failed(self, task_id: int, src_worker_id: int, exc: Exception) -> None:
        log.error(
            "task %d from worker %d raised %s: %s",
            task_id,
            src_worker_id,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        self._ended(STATUS_ERROR, f"{type(exc).__name__}: {exc}")

    def _ended(self, status: int, value: Any) -> None:
        """The task is over: count it and become free (idle, or ask the manager for queued work)
        before its result leaves, so that the worker that gets the result finds this task worker
        free for its next task instead of queueing it at the manager. One result per task: after
        ``finish()``, the return value (or an exception) is not sent."""
        self.done += 1
        if self.max_request and self.done >= self.max_request and not self.stopping:
            self.stopping = True
            asyncio.get_running_loop().call_soon(self._end)
        if not self.backlog:
            self._become_idle()
        if not self.finished:
            self._reply(status, value)

    def finish(self, result: Any) -> bool:
        """Send the running task's result to the worker that dispatched it."""
        if self.current is None or self.finished:
            return False
        return self._reply(STATUS_OK, result)

    def _reply(self, status: int, value: Any) -> bool:
        assert self.current is not None and self.mailbox is not None
        self.finished = True
        src_pid, task_id = self.current
        data_format, data = _encode(value)
        return self.mailbox.send(src_pid, MSG_FINISH, FINISH_HEAD.pack(task_id, status, data_format), data)


# -- worker side -----------------------------------------------------------------------------------
class TaskClient:
    """``task``/``taskwait``/``task_co`` for a worker: sends tasks, routes results back."""

    def __init__(self, server: Server, mailbox: Mailbox, worker_id: int):
        self.server = server
        self.mailbox = mailbox
        self.worker_id = worker_id
        self.next_id = 0
        self.callbacks: dict[int, Callable[..., Any]] = {}
        self.waiters: dict[int, _Waiting] = {}  # task id -> the wait_async call that wants it
        self.deadlines: dict[_Waiting, float] = {}  # wait_async calls in progress -> their loop deadline
        self.expiry: asyncio.TimerHandle | None = None  # one timer for all of them, at the earliest
        self.expiry_at = math.inf
        self.blocking_results: dict[int, tuple[int, Any]] = {}
        self.blocking_wanted: set[int] | frozenset[int] = frozenset()
        self.pid = os.getpid()
        self.registry = server._registry
        self.worker_num = server.setting["worker_num"]
        self.in_flight: dict[int, dict[int, None]] = collections.defaultdict(dict)  # task worker pid -> ids

    def send(self, data: Any, dst_task_worker: int = -1) -> int | bool:
        """Dispatch a task; its id, or False when the queue is full (nothing is sent then)."""
        data_format, body = _encode(data)
        task_id = self.next_id
        head = TASK_HEAD.pack(self.pid, self.worker_id, task_id, dst_task_worker, data_format)
        registry = self.registry
        index = claim_task_worker(registry, dst_task_worker)
        if index is not None:
            pid = registry.workers.get(str(self.worker_num + index), "pid")
            if pid and self.mailbox.send(pid, MSG_TASK, head, body):
                self.next_id += 1
                self.in_flight[pid][task_id] = None
                return task_id
            log.warning("task worker %d is not reachable: queueing the task", index)
        limit = self.server.setting["task_queue_size"]
        if registry.tasks_queued.add(1) > limit:
            registry.tasks_queued.sub(1)
            log.warning("task refused: %d tasks already queued (task_queue_size)", limit)
            return False
        if not self.mailbox.send(self.server.manager_pid, MSG_TASK, head, body):
            registry.tasks_queued.sub(1)
            log.warning("task refused: the manager is not reachable")
            return False
        self.next_id += 1
        return task_id

    def task_worker_gone(self, payload: bytes) -> None:
        """A task worker died: every task of ours it held ends with a TaskError."""
        pid = PID.unpack_from(payload)[0]
        reason = payload[PID.size :].decode()
        for task_id in self.in_flight.pop(pid, {}):
            self._deliver(task_id, STATUS_ERROR, reason)

    def on_finish(self, payload: bytes, sender: int) -> None:
        task_id, status, data_format = FINISH_HEAD.unpack_from(payload)
        value = _decode(data_format, payload, FINISH_HEAD.size)
        tasks = self.in_flight.get(sender)
        if tasks is not None:
            tasks.pop(task_id, None)
        self._deliver(task_id, status, value)

    def _deliver(self, task_id: int, status: int, value: Any) -> None:
        if task_id in self.blocking_wanted:
            self.blocking_results[task_id] = (status, value)
            return
        result = _result(status, value)
        waiting = self.waiters.pop(task_id, None)
        if waiting is not None:
            waiting.add(task_id, result)
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
        wanted = self.blocking_wanted = frozenset(task_ids)
        results = self.blocking_results = {}
        deadline = time.monotonic() + timeout
        deferred = []
        receive = self.mailbox.receive
        try:
            while len(results) < len(wanted):
                message = receive(deadline - time.monotonic(), TASKWAIT_SPIN)
                if message is None:
                    break
                kind, sender, payload, _ = message
                if kind == MSG_FINISH and FINISH_HEAD.unpack_from(payload)[0] in wanted:
                    self.on_finish(payload, sender)
                elif kind == MSG_TASK_WORKER_GONE:
                    self.task_worker_gone(payload)
                else:
                    deferred.append(message)
        finally:
            self.blocking_wanted = frozenset()
            if deferred:
                handler = self.mailbox.handler
                loop = asyncio.get_event_loop()
                for message in deferred:
                    loop.call_soon(handler, *message)  # type: ignore[misc]
        return {task_id: _result(*outcome) for task_id, outcome in results.items()}

    async def wait_async(self, task_ids: list[int], timeout: float) -> dict[int, Any]:
        """Wait from a coroutine until these tasks finish or ``timeout``: one future and one timer
        for the whole wait, whatever the number of tasks."""
        if not task_ids:
            return {}
        loop = asyncio.get_running_loop()
        waiting = _Waiting(loop.create_future(), len(task_ids))
        for task_id in task_ids:
            self.waiters[task_id] = waiting
        deadline = self.deadlines[waiting] = loop.time() + timeout
        if deadline < self.expiry_at:
            self._expire_at(loop, deadline)
        try:
            await waiting.done
        finally:
            del self.deadlines[waiting]
            for task_id in task_ids:
                self.waiters.pop(task_id, None)
        return waiting.results

    def _expire_at(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        self.expiry_at = when
        self.expiry = loop.call_at(when, self._expire_due, loop)

    def _expire_due(self, loop: asyncio.AbstractEventLoop) -> None:
        """End the waits whose deadline passed; the timer moves to the next deadline (a wait
        that finished in time leaves the timer alone: it costs no timer of its own)."""
        self.expiry, self.expiry_at = None, math.inf
        now = loop.time() + 0.001  # timers have millisecond resolution
        following = math.inf
        for waiting, deadline in self.deadlines.items():
            if deadline <= now:
                waiting.expire()
            elif deadline < following:
                following = deadline
        if following < math.inf:
            self._expire_at(loop, following)


class _Waiting:
    """One ``wait_async`` call: the results so far, and the future it sleeps on."""

    __slots__ = ("done", "missing", "results")

    def __init__(self, done: asyncio.Future, missing: int):
        self.done = done
        self.missing = missing
        self.results: dict[int, Any] = {}

    def add(self, task_id: int, result: Any) -> None:
        self.results[task_id] = result
        self.missing -= 1
        if not self.missing:
            self.expire()

    def expire(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
