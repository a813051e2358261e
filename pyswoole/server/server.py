"""``Server``: Swoole's server API. Configure it in the launching process, ``start()`` it, and use
its methods from the callbacks that run in the workers."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import pickle
import resource
import secrets
import signal
from collections.abc import Callable, Iterator
from typing import Any

import setproctitle

from pyswoole import log as log_setup
from pyswoole.constants import BASE, DISPATCH_UIDMOD, PROCESS, SOCK_TCP, SOCK_UDP6, SOCK_UNIX_DGRAM
from pyswoole.coroutine.runner import spawn
from pyswoole.process.ipc import Mailbox
from pyswoole.process.supervisor import Child, Supervisor
from pyswoole.server import settings as settings_module
from pyswoole.server import tls
from pyswoole.server.connection import StreamConnection
from pyswoole.server.master import MSG_WORKER_EXIT, WORKER_PID, Master
from pyswoole.server.operation import (
    ControlServer,
    daemonize,
    drop_privileges,
    inherit_listeners,
    remove_pid_file,
    write_pid_file,
)
from pyswoole.server.port import PORT_EVENTS, Port
from pyswoole.server.registry import Registry
from pyswoole.server.tasks import TaskDispatcher, TaskError, TaskWorker, caller_is_coroutine
from pyswoole.server.worker import FD, FD_FLAG, MSG_CLOSE, MSG_PAUSE, MSG_RESUME, MSG_SEND, Worker
from pyswoole.timer import Timer

log = logging.getLogger("pyswoole")

#: Server events and the number of arguments their callbacks receive.
EVENTS: dict[str, int] = {
    "start": 1,
    "shutdown": 1,
    "manager_start": 1,
    "manager_stop": 1,
    "worker_start": 2,
    "worker_stop": 2,
    "worker_exit": 2,
    "worker_error": 5,
    "connect": 3,
    "receive": 4,
    "packet": 3,
    "close": 3,
    "pipe_message": 3,
    "buffer_full": 2,
    "buffer_empty": 2,
    "task": 4,  # or 2 with task_enable_coroutine: (server, task)
    "finish": 3,
    "before_reload": 1,
    "after_reload": 1,
}


def _check_arity(event: str, callback: Callable[..., Any], count: int) -> None:
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):  # builtins without a signature: trust them
        return
    try:
        signature.bind(*range(count))
    except TypeError:
        raise TypeError(
            f"callback for {event!r} must accept {count} positional arguments, {callback!r} has signature {signature}"
        ) from None


def _takes(callback: Callable[..., Any], count: int) -> bool:
    try:
        inspect.signature(callback).bind(*range(count))
    except (TypeError, ValueError):
        return False
    return True


def call_blocking(callback: Callable[..., Any] | None, *args: Any) -> None:
    """Run a callback in a process without an event loop (master, manager); errors are logged."""
    if callback is None:
        return
    try:
        result = callback(*args)
        if inspect.iscoroutine(result):
            asyncio.run(result)
    except Exception:
        log.exception("callback %s raised", getattr(callback, "__name__", callback))


class Server:
    """A TCP, UDP or Unix socket server with Swoole's events, settings and process model."""

    EVENTS = EVENTS
    PORT_EVENTS = PORT_EVENTS
    SETTINGS = settings_module.SETTINGS
    connection_class: type[StreamConnection] = StreamConnection
    #: TLS needs the SSL socket flag (Swoole's rule); protocol servers may enable it from the settings.
    TLS_FROM_SETTINGS = False
    TLS_ALPN: tuple[str, ...] = ()  # protocols offered in the TLS handshake

    def __init__(self, host: str = "0.0.0.0", port: int = 0, mode: int = PROCESS, sock_type: int = SOCK_TCP):
        if mode not in (BASE, PROCESS):
            raise ValueError(f"unknown server mode {mode!r}: use BASE or PROCESS")
        self.host = host
        self.mode = mode
        self.type = sock_type
        self.ports: list[Port] = [Port(self, host, port, sock_type)]
        self.callbacks: dict[str, Callable[..., Any]] = {}
        self._user_settings: dict[str, Any] = {}
        self.setting: dict[str, Any] = settings_module.defaults(self.SETTINGS)
        self.master_pid = 0
        self.manager_pid = 0
        self.worker_id = -1
        self.worker_pid = 0
        self._registry: Registry | None = None
        self._worker: Worker | None = None
        self._connections: dict[int, StreamConnection] = {}  # this worker's (the send fast path)
        self._supervisor: Supervisor | None = None
        self._task_dispatcher: TaskDispatcher | None = None
        self._manager_mailbox: Mailbox | None = None
        self._task_worker: TaskWorker | None = None
        self.taskworker = False
        self._namespace = ""
        self._started = False
        self._control: ControlServer | None = None
        self._on_worker_start: Callable[[Server], None] | None = None  # reloads app code (CLI)

    @property
    def port(self) -> int:
        return self.ports[0].port

    # -- configuration -------------------------------------------------------------------------
    def set(self, settings: dict[str, Any]) -> None:
        """Apply Swoole settings; an unknown key or a wrong type raises ``SettingsError`` at once."""
        if self._started:
            raise RuntimeError("settings cannot change after start()")
        checked = settings_module.validate(settings, self.SETTINGS)
        self._user_settings.update(checked)
        self.setting.update(checked)

    def on(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        """Register ``callback`` for ``event``; without a callback, return a decorator."""
        return self._register(self.callbacks, event, callback, allowed=self.EVENTS)

    def _register(
        self,
        table: dict[str, Callable[..., Any]],
        event: str,
        callback: Callable[..., Any] | None,
        *,
        allowed: Any,
    ) -> Any:
        if not isinstance(event, str):
            raise TypeError(f"event name must be a str, not {type(event).__name__}")
        key = event.lower().replace("_", "")
        aliases = {n.replace("_", ""): n for n in allowed}
        name = aliases.get(key) or aliases.get(key.removeprefix("on"), event)
        if name not in allowed:
            raise ValueError(f"unknown event {event!r}; known events: {', '.join(sorted(allowed))}")

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            if not callable(fn):
                raise TypeError(f"callback for {name!r} must be callable, not {type(fn).__name__}")
            _check_arity(name, fn, 2 if name == "task" and _takes(fn, 2) else self.EVENTS[name])
            table[name] = fn
            return fn

        if callback is None:
            return register
        register(callback)
        return None

    def listen(self, host: str, port: int, sock_type: int = SOCK_TCP) -> Port:
        """Listen on one more address; returns the ``Port`` (with its own ``set``/``on``)."""
        if self._started:
            raise RuntimeError("listen() must be called before start()")
        extra = Port(self, host, port, sock_type)
        self.ports.append(extra)
        return extra

    add_listener = listen

    def connection_class_for(self, port: Port) -> type[StreamConnection]:
        """The stream protocol a port speaks (protocol servers choose by the port's settings)."""
        return self.connection_class

    # -- running -----------------------------------------------------------------------------------
    def start(self) -> bool:
        """Bind, fork the workers and supervise them; blocks until the server shuts down."""
        if self._started:
            raise RuntimeError("server already started")
        self._started = True
        _raise_open_files_limit()
        if "max_conn" not in self._user_settings:  # sized from the (raised) descriptor limit
            self.setting["max_conn"] = settings_module.default_max_conn()
        for key in ("pid_file", "log_file"):  # daemons run in /
            if self.setting[key]:
                self.setting[key] = os.path.abspath(self.setting[key])
        log_setup.configure(self.setting)
        log_setup.whole_lines()
        for port in self.ports:
            port.prepare()  # TLS certificates are loaded before any socket is bound
        self._bind_ports()
        pid_file = self.setting["pid_file"]
        if self.setting["daemonize"]:
            daemonize(pid_file, self.setting["log_file"])
        self.master_pid = self.manager_pid = os.getpid()
        self._namespace = f"{self.master_pid}.{secrets.token_hex(4)}"
        worker_num = self.setting["worker_num"]
        task_worker_num = self.setting["task_worker_num"]
        self._registry = Registry(self.setting["max_conn"], worker_num + task_worker_num, task_worker_num)
        setproctitle.setproctitle("pyswoole: master")
        self._control = ControlServer(self)
        if pid_file:
            write_pid_file(pid_file)
        try:
            call_blocking(self.callbacks.get("start"), self)
            if self.mode == PROCESS:
                Master(self).run(self._run_manager)
            else:
                self._run_manager()
        finally:
            for port in self.ports:
                port.close()
                if not self._control.handed_over:
                    port.unlink()
            self._control.close()
            call_blocking(self.callbacks.get("shutdown"), self)
            if pid_file:
                remove_pid_file(pid_file)
        return True

    def _bind_ports(self) -> None:
        """Bind every port, or take them over from the server being replaced (``pyswoole restart``
        sets ``PYSWOOLE_INHERIT_FROM`` to its master pid)."""
        predecessor = os.environ.pop("PYSWOOLE_INHERIT_FROM", "")
        inherited = {}
        if predecessor:
            try:
                inherited = dict(inherit_listeners(int(predecessor)))
            except (OSError, ValueError) as exc:
                log.warning(
                    "could not take over the listening sockets of pid %s (%s): binding anew", predecessor, exc
                )
        for port in self.ports:
            sock = inherited.pop((port.host, port.port, port.type), None)
            if sock is not None:
                port.adopt(sock)
            else:
                port.bind(self.setting["backlog"])
        for sock in inherited.values():
            sock.close()

    def _reopen_logs(self) -> None:
        log_setup.reopen(self.setting["log_file"], self.setting["daemonize"])

    def _run_manager(self) -> int:
        """The manager: supervise workers and task workers, hold the task queue."""
        if self.mode == PROCESS:
            setproctitle.setproctitle("pyswoole: manager")
            self.manager_pid = os.getpid()
            for port in self.ports:  # the master accepts; workers only need datagram sockets
                if port.is_stream:
                    port.close()
        supervisor = self._supervisor = Supervisor(
            stop_timeout=self.setting["max_wait_time"] + 1, on_exit=self._child_exited
        )
        supervisor.SIGNALS = (*Supervisor.SIGNALS, signal.SIGRTMIN)  # type: ignore[misc]

        def reopen_logs() -> None:
            self._reopen_logs()
            supervisor.kill_all(signal.SIGRTMIN)

        supervisor.handle_rtmin = reopen_logs  # type: ignore[attr-defined]
        if self.mode == PROCESS:
            self._control.close()  # the master answers control requests
        else:
            supervisor.watch(self._control.fileno(), self._control.on_readable)
        self._manager_mailbox = Mailbox(self._namespace)
        supervisor.before_reload = lambda: call_blocking(self.callbacks.get("before_reload"), self)
        supervisor.after_reload = lambda: call_blocking(self.callbacks.get("after_reload"), self)
        supervisor.add_group("worker", self.setting["worker_num"], self._run_worker)
        if self.setting["task_worker_num"]:
            supervisor.add_group(
                "task", self.setting["task_worker_num"], self._run_task_worker, reload_signal=signal.SIGUSR2
            )
            self._task_dispatcher = TaskDispatcher(self, supervisor, self._manager_mailbox)
        call_blocking(self.callbacks.get("manager_start"), self)
        try:
            supervisor.run()
        finally:
            call_blocking(self.callbacks.get("manager_stop"), self)
        return 0

    def _forget_manager_state(self) -> None:
        """In a new worker: drop what belongs to the master and manager, take the user/group."""
        self._control.close()
        drop_privileges(self.setting["user"], self.setting["group"])
        if self._on_worker_start is not None:
            self._on_worker_start(self)
        self._supervisor = None
        self._task_dispatcher = None
        if self._manager_mailbox is not None:
            self._manager_mailbox.sock.close()
            self._manager_mailbox = None

    def _run_worker(self, worker_id: int) -> int:
        setproctitle.setproctitle(f"pyswoole: worker {worker_id}")
        self.worker_id = worker_id
        self.worker_pid = os.getpid()
        self._forget_manager_state()
        self._worker = Worker(self, worker_id)
        self._connections = self._worker.connections
        return self._worker.run()

    def _run_task_worker(self, task_worker_id: int) -> int:
        setproctitle.setproctitle(f"pyswoole: task {task_worker_id}")
        self.taskworker = True
        self.worker_id = self.setting["worker_num"] + task_worker_id
        self.worker_pid = os.getpid()
        self._forget_manager_state()
        self._task_worker = TaskWorker(self, task_worker_id)
        return self._task_worker.run()

    def _child_exited(self, child: Child, code: int, signo: int) -> None:
        worker_id = child.id
        if self.mode == PROCESS and child.group.name == "worker" and self._manager_mailbox is not None:
            self._manager_mailbox.send(self.master_pid, MSG_WORKER_EXIT, WORKER_PID.pack(child.id, child.pid))
        if child.group.name == "task":
            worker_id += self.setting["worker_num"]
            if self._task_dispatcher is not None:
                self._task_dispatcher.task_worker_exited(child, code, signo)
        if code or signo:
            call_blocking(self.callbacks.get("worker_error"), self, worker_id, child.pid, code, signo)

    # -- life cycle verbs -----------------------------------------------------------------------
    def shutdown(self) -> bool:
        """Stop the whole server gracefully (from any process of it)."""
        if self._registry is not None:
            self._registry.shutting_down.set(1)
        if self._supervisor is not None and self.mode == BASE:
            self._supervisor.stop()
        else:
            os.kill(self.master_pid, signal.SIGTERM)
        return True

    def reload(self, only_task: bool = False) -> bool:
        """Restart every worker (or only the task workers) gracefully: the new ones start, the old
        ones finish what they are doing and exit; in PROCESS mode connections stay open."""
        if self._supervisor is not None:
            self._supervisor.reload(["task"] if only_task else None)
        else:
            os.kill(self.manager_pid, signal.SIGUSR2 if only_task else signal.SIGUSR1)
        return True

    def stop(self, worker_id: int = -1, wait_event: bool = False) -> bool:
        """Stop worker ``worker_id`` (this one by default) gracefully; the manager replaces it."""
        registry = self._registry
        if registry is None:
            return False
        if worker_id < 0 or worker_id == self.worker_id:
            if self._worker is None:
                return False
            self._worker.stop()
            return True
        row = registry.worker(worker_id)
        if not row or not row["pid"]:
            return False
        try:
            os.kill(row["pid"], signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    def get_worker_status(self, worker_id: int = -1) -> int | list[int] | bool:
        """``WORKER_BUSY``/``WORKER_IDLE``/``WORKER_EXIT`` of one worker, or of all with -1 from
        outside a worker."""
        if self._registry is None:
            return False
        if worker_id < 0 and self.worker_id >= 0:
            worker_id = self.worker_id
        if worker_id < 0:
            total = self.setting["worker_num"] + self.setting["task_worker_num"]
            return [(self._registry.worker(i) or {}).get("status", 0) for i in range(total)]
        row = self._registry.worker(worker_id)
        return row["status"] if row else False

    def get_manager_pid(self) -> int:
        return self.manager_pid

    def get_master_pid(self) -> int:
        return self.master_pid

    def get_worker_id(self) -> int:
        return self.worker_id

    def get_worker_pid(self) -> int:
        return self.worker_pid

    # -- connections ---------------------------------------------------------------------------
    def _local(self, fd: int) -> StreamConnection | None:
        worker = self._worker
        return None if worker is None else worker.connections.get(fd)

    def send(self, fd: int, data: bytes | str, server_socket: int = -1) -> bool:
        """Send to connection ``fd``, whichever worker owns it; False if it is gone or its
        output buffer is over ``buffer_output_size``."""
        if data.__class__ is str:
            data = data.encode()  # type: ignore[union-attr]
        conn = self._connections.get(fd)
        if conn is not None:
            return conn.send(data)  # type: ignore[arg-type]
        return self._require_worker().route(fd, MSG_SEND, FD.pack(fd), data)  # type: ignore[arg-type]

    def sendto(self, ip: str, port: int, data: bytes | str, server_socket: int = -1) -> bool:
        """Send a datagram from one of this server's UDP/Unix datagram ports."""
        if isinstance(data, str):
            data = data.encode()
        worker = self._require_worker()
        wanted = SOCK_UNIX_DGRAM if ip.startswith("/") else (SOCK_UDP6 if ":" in ip else None)
        for transport, endpoint in worker.datagram_endpoints:
            if server_socket not in (-1, endpoint.port.fileno):
                continue
            if wanted is None and endpoint.port.type in (SOCK_UDP6, SOCK_UNIX_DGRAM):
                continue
            if wanted is not None and endpoint.port.type != wanted:
                continue
            transport.sendto(data, ip if endpoint.port.type == SOCK_UNIX_DGRAM else (ip, port))
            return True
        return False

    def close(self, fd: int, reset: bool = False) -> bool:
        conn = self._local(fd)
        if conn is not None:
            conn.close(reset)
            return True
        return self._require_worker().route(fd, MSG_CLOSE, FD_FLAG.pack(fd, int(reset)))

    def pause(self, fd: int) -> bool:
        conn = self._local(fd)
        if conn is not None:
            conn.transport.pause_reading()
            return True
        return self._require_worker().route(fd, MSG_PAUSE, FD.pack(fd))

    def resume(self, fd: int) -> bool:
        conn = self._local(fd)
        if conn is not None:
            conn.transport.resume_reading()
            return True
        return self._require_worker().route(fd, MSG_RESUME, FD.pack(fd))

    def exists(self, fd: int) -> bool:
        if self._local(fd) is not None:
            return True
        return self._registry is not None and self._registry.get(fd) is not None

    exist = exists

    def get_client_info(self, fd: int, reactor_id: int = -1) -> dict[str, Any] | None:
        """Address, port, times, owner worker and uid of connection ``fd``; None if it is gone."""
        if self._registry is None:
            return None
        row = self._registry.get(fd)
        if row is None:
            return None
        conn = self._local(fd)
        if conn is not None:
            row.update(last_time=conn.last_time, recv_bytes=conn.bytes_in, sent_bytes=conn.bytes_out)
        info = {
            "server_port": row["server_port"],
            "server_fd": row["server_fd"],
            "socket_fd": fd,
            "remote_ip": row["remote_ip"],
            "remote_port": row["remote_port"],
            "connect_time": row["connect_time"],
            "last_time": row["last_time"],
            "worker_id": row["worker_id"],
            "reactor_id": row["worker_id"],
            "uid": row["uid"],
            "websocket_status": row["websocket_status"],
            "recv_bytes": row["recv_bytes"],
            "sent_bytes": row["sent_bytes"],
        }
        client_certificate = tls.client_certificate(conn.transport) if conn is not None else None
        if client_certificate:  # a TLS client that presented one (seen by the owning worker only)
            info["ssl_client_cert"] = client_certificate
        return info

    getClientInfo = get_client_info

    @property
    def connections(self) -> Iterator[int]:
        """Every live connection's fd, across all workers, in accept order."""
        return self._registry.fds() if self._registry is not None else iter(())

    def bind(self, fd: int, uid: int) -> bool:
        """Attach ``uid`` to connection ``fd``. With ``dispatch_mode`` 5 in PROCESS mode the
        connection then moves to worker ``uid % worker_num`` (after the current callback step)."""
        if self._registry is None or not self._registry.bind(fd, uid):
            return False
        conn = self._local(fd)
        if self.mode == PROCESS and self.setting["dispatch_mode"] == DISPATCH_UIDMOD and conn is not None:
            target = uid % self.setting["worker_num"]
            if target != self.worker_id and not tls.carries_tls(conn):  # a TLS session stays in its worker
                self._worker.loop.call_soon(conn.release, target)  # type: ignore[union-attr]
        return True

    def send_message(self, message: Any, dst_worker_id: int) -> bool:
        """Deliver any picklable object to the ``pipe_message`` callback of worker ``dst_worker_id``."""
        worker = self._require_worker()
        if dst_worker_id == worker.worker_id:
            callback = self.callbacks.get("pipe_message")
            if callback is None:
                return False
            message = pickle.loads(pickle.dumps(message))
            worker.loop.call_soon(
                lambda: spawn(callback, self, worker.worker_id, message, name="pipe_message")
            )  # type: ignore[union-attr]
            return True
        return worker.send_message(message, dst_worker_id)

    sendMessage = send_message

    def stats(self) -> dict[str, Any]:
        """Counters of the whole server and of each worker (other workers publish every second)."""
        registry = self._registry
        if registry is None:
            raise RuntimeError("stats() is available once the server has started")
        if self._worker is not None:
            self._worker.publish_stats()
        workers = []
        request_count = 0
        for worker_id in range(self.setting["worker_num"]):
            row = registry.worker(worker_id) or {}
            request_count += row.get("request_count", 0)
            workers.append({"worker_id": worker_id, **row})
        return {
            "start_time": registry.start_time,
            "connection_num": registry.connection_num,
            "accept_count": registry.accept_count.get(),
            "close_count": registry.close_count.get(),
            "worker_num": self.setting["worker_num"],
            "request_count": request_count,
            "worker_request_count": self._worker.request_count if self._worker else 0,
            "workers": workers,
        }

    # -- tasks ---------------------------------------------------------------------------------
    def task(
        self, data: Any, dst_worker_id: int = -1, callback: Callable[..., Any] | None = None
    ) -> int | bool:
        """Queue ``data`` for a task worker; returns the task id at once (False if refused).

        The result comes back to ``callback(server, task_id, result)`` or the ``finish`` event;
        a task whose task worker died delivers a ``TaskError`` there.
        """
        client = self._task_client()
        task_id = client.send(data, dst_worker_id)
        if callback is not None and task_id is not False:
            client.callbacks[task_id] = callback  # type: ignore[index]
        return task_id

    def taskwait(self, data: Any, timeout: float = 0.5, dst_worker_id: int = -1) -> Any:
        """Run a task and wait for its result: blocking when called from a plain function, an
        awaitable when called from an ``async def``. False on timeout; ``TaskError`` if it failed."""
        if caller_is_coroutine():
            return self._taskwait_async(data, timeout, dst_worker_id)
        client = self._task_client()
        task_id = client.send(data, dst_worker_id)
        if task_id is False:
            return False
        return _raise_failed(client.wait_blocking([task_id], timeout).get(task_id, False))

    async def _taskwait_async(self, data: Any, timeout: float, dst_worker_id: int) -> Any:
        client = self._task_client()
        task_id = client.send(data, dst_worker_id)
        if task_id is False:
            return False
        return _raise_failed((await client.wait_async([task_id], timeout)).get(task_id, False))

    def task_wait_multi(self, tasks: list[Any], timeout: float = 0.5) -> Any:
        """Run several tasks concurrently; ``{index: result}`` of those that finished in time
        (blocking from a plain function, awaitable from an ``async def``)."""
        client = self._task_client()
        ids = [client.send(data) for data in tasks]
        sent = [task_id for task_id in ids if task_id is not False]

        def collect(results: dict[int, Any]) -> dict[int, Any]:
            return {i: results[t] for i, t in enumerate(ids) if t is not False and t in results}

        if caller_is_coroutine():

            async def waiting() -> dict[int, Any]:
                return collect(await client.wait_async(sent, timeout))

            return waiting()
        return collect(client.wait_blocking(sent, timeout))

    taskWaitMulti = task_wait_multi

    async def task_co(self, tasks: list[Any], timeout: float = 0.5) -> list[Any]:
        """Run several tasks concurrently; results in order, ``False`` for failed or late ones."""
        client = self._task_client()
        ids = [client.send(data) for data in tasks]
        results = await client.wait_async([t for t in ids if t is not False], timeout)
        return [
            False if t is False or isinstance(results.get(t, False), TaskError) else results.get(t, False)
            for t in ids
        ]

    taskCo = task_co

    def finish(self, result: Any) -> bool:
        """In a task worker: send ``result`` to the dispatching worker now."""
        if self._task_worker is None:
            raise RuntimeError("finish() is available in task workers only")
        return self._task_worker.finish(result)

    def _task_client(self) -> Any:
        worker = self._require_worker()
        if not self.setting["task_worker_num"]:
            raise RuntimeError("tasks need task_worker_num > 0")
        return worker.tasks

    # -- timers --------------------------------------------------------------------------------
    def tick(self, ms: int | float, callback: Callable[..., Any], *args: Any) -> int:
        return Timer.tick(ms, callback, *args)

    def after(self, ms: int | float, callback: Callable[..., Any], *args: Any) -> int:
        return Timer.after(ms, callback, *args)

    def clear_timer(self, timer_id: int) -> bool:
        return Timer.clear(timer_id)

    clearTimer = clear_timer

    def _require_worker(self) -> Worker:
        if self._worker is None:
            raise RuntimeError("this method is available in worker processes only")
        return self._worker


def _raise_failed(result: Any) -> Any:
    if isinstance(result, TaskError):
        raise result
    return result


def _raise_open_files_limit() -> None:
    """Let the server hold as many connections as the hard descriptor limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open files limit from %d to %d: %s", soft, hard, exc)
