"""One supervisor for every family of child processes (the server's manager, ``Pool``, ``Manager``).

In the manner of gunicorn's arbiter: signal handlers do nothing but wake the loop through a
self-pipe (``signal.set_wakeup_fd`` writes the signal number into it); the loop reads the numbers
and calls the named handler ``handle_<name>`` for each. Spawning, reaping, replacing and stopping
children are small verbs. Children are forked, identified by a group name and a stable id, and are
respawned with the same id when they exit unless the supervisor is stopping or replaced them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pyswoole.log import whole_lines

log = logging.getLogger("pyswoole")

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent_pid: int, signo: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``signo`` to this process when its parent dies (no orphans)."""
    _libc.prctl(_PR_SET_PDEATHSIG, signo, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), signo)


@dataclass
class ChildGroup:
    """``count`` children running ``target(child_id)``; the return value is the exit code."""

    name: str
    count: int
    target: Callable[[int], int | None]
    reload_signal: int = signal.SIGUSR1


@dataclass
class Child:
    group: ChildGroup
    id: int
    pid: int
    started: float = field(default_factory=time.monotonic)
    stopping_since: float | None = None
    replaced: bool = False


ExitHook = Callable[[Child, int, int], None]
"""``on_exit(child, exit_code, signal)`` runs in the supervisor when a child ends."""


class Supervisor:
    """Keeps groups of children alive; stops and reloads them on signals or on request."""

    #: Signals the supervisor listens to; each maps to the method ``handle_<name>``.
    SIGNALS = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
    #: A child that dies younger than this is respawned only after the same delay (no fork storm).
    MIN_LIFETIME = 1.0

    def __init__(self, *, stop_timeout: float = 3.0, on_exit: ExitHook | None = None):
        self.stop_timeout = stop_timeout
        self.on_exit = on_exit
        self.groups: dict[str, ChildGroup] = {}
        self.children: dict[int, Child] = {}
        self.stopping = False
        self._pending_respawn: list[tuple[float, ChildGroup, int]] = []
        self._wakeup_r = self._wakeup_w = -1
        self._previous_handlers: dict[int, object] = {}
        self._mask_before_fork: set[signal.Signals] = set()
        self._watched: dict[int, Callable[[], None]] = {}
        self._reloading: set[int] = set()  # pids of replaced children still running
        self.before_reload: Callable[[], None] | None = None
        self.after_reload: Callable[[], None] | None = None
        self.pid = os.getpid()

    # -- configuration -------------------------------------------------------------------------
    def add_group(
        self,
        name: str,
        count: int,
        target: Callable[[int], int | None],
        *,
        reload_signal: int = signal.SIGUSR1,
    ) -> ChildGroup:
        group = ChildGroup(name, count, target, reload_signal)
        self.groups[name] = group
        return group

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback()`` from the supervision loop whenever ``fd`` is readable."""
        self._watched[fd] = callback

    # -- queries ---------------------------------------------------------------------------------
    def pid_of(self, group: str, child_id: int) -> int | None:
        """The pid of the current (not replaced) child ``child_id`` of ``group``."""
        for child in self.children.values():
            if child.group.name == group and child.id == child_id and not child.replaced:
                return child.pid
        return None

    # -- main loop -------------------------------------------------------------------------------
    def run(self) -> None:
        """Spawn every child and supervise until stopped and every child has exited."""
        whole_lines()
        self._install_signals()
        try:
            for group in self.groups.values():
                for child_id in range(group.count):
                    self.spawn(group, child_id)
            while not (self.stopping and not self.children):
                for signo in self._wait_for_signals(self._next_timeout()):
                    self._dispatch(signo)
                self.reap()
                self._respawn_due()
                self._kill_overdue()
        finally:
            self._restore_signals()

    def _next_timeout(self) -> float:
        timeout = 1.0
        now = time.monotonic()
        for due, _, _ in self._pending_respawn:
            timeout = min(timeout, max(0.0, due - now))
        for child in self.children.values():
            if child.stopping_since is not None:
                timeout = min(timeout, max(0.0, child.stopping_since + self.stop_timeout - now))
        return timeout

    def _dispatch(self, signo: int) -> None:
        name = signal.Signals(signo).name[3:].lower()
        handler = getattr(self, f"handle_{name}", None)
        if handler is not None:
            handler()

    # -- signal handlers ---------------------------------------------------------------------------
    def handle_chld(self) -> None:
        self.reap()

    def handle_term(self) -> None:
        """Graceful stop; a second request while stopping forces it."""
        if self.stopping:
            self.kill_all(signal.SIGKILL)
        else:
            self.stop()

    handle_int = handle_term

    def handle_quit(self) -> None:
        self.stopping = True
        self.kill_all(signal.SIGKILL)

    def handle_usr1(self) -> None:
        self.reload()

    def handle_usr2(self) -> None:
        self.reload([g.name for g in self.groups.values() if g.reload_signal == signal.SIGUSR2])

    # -- verbs -------------------------------------------------------------------------------------
    def spawn(self, group: ChildGroup, child_id: int) -> Child:
        # The supervisor's signals stay blocked across fork: a new child must not run the inherited
        # handlers, which would swallow a SIGTERM meant for it (and write into the supervisor's wakeup
        # pipe). The child unblocks them once its own dispositions are set; a stop sent meanwhile applies.
        self._mask_before_fork = signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                self._child_main(group, child_id)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask_before_fork)
        child = Child(group, child_id, pid)
        self.children[pid] = child
        return child

    def _child_main(self, group: ChildGroup, child_id: int) -> None:
        code = 1
        try:
            self._reset_signals_in_child()
            die_with_parent(self.pid)
            result = group.target(child_id)
            code = result if isinstance(result, int) else 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except KeyboardInterrupt:
            code = 130  # interrupted, not crashed
        except BaseException:
            log.exception("%s %d crashed", group.name, child_id)
            code = 255
        finally:
            for stream in (sys.stdout, sys.stderr):  # os._exit skips it: keep what was printed
                with contextlib.suppress(Exception):
                    stream.flush()
            with contextlib.suppress(Exception):
                logging.shutdown()
            os._exit(code)

    def stop(self, timeout: float | None = None) -> None:
        """Ask every child to stop (SIGTERM); SIGKILL those still alive after the timeout."""
        if timeout is not None:
            self.stop_timeout = timeout
        self.stopping = True
        self._pending_respawn.clear()
        for child in list(self.children.values()):
            self._terminate(child)

    def reload(self, groups: list[str] | None = None) -> None:
        """Replace the children of ``groups`` (all by default): start the new, then stop the old."""
        if self.stopping:
            return
        names = set(self.groups if groups is None else groups)
        old = [c for c in self.children.values() if c.group.name in names and not c.replaced]
        if not old:
            return
        if self.before_reload is not None:
            self.before_reload()
        self._reloading.update(c.pid for c in old)
        for child in old:
            child.replaced = True
            self.spawn(child.group, child.id)
        for child in old:
            self._terminate(child)

    def restart(self, group: str, child_id: int) -> bool:
        """Replace one child (``Server.stop(worker_id)``); False if there is no such child."""
        for child in list(self.children.values()):
            if child.group.name == group and child.id == child_id and not child.replaced:
                child.replaced = True
                self.spawn(child.group, child.id)
                self._terminate(child)
                return True
        return False

    def kill_all(self, signo: int) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signo)

    def _terminate(self, child: Child) -> None:
        if child.stopping_since is None:
            child.stopping_since = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGTERM)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 0
            signo = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
            if (code or signo) and child.stopping_since is None:
                log.warning(
                    "%s %d (pid %d) exited with code %d, signal %d",
                    child.group.name,
                    child.id,
                    pid,
                    code,
                    signo,
                )
            if self.on_exit is not None:
                try:
                    self.on_exit(child, code, signo)
                except Exception:
                    log.exception("exit hook failed for %s %d", child.group.name, child.id)
            if pid in self._reloading:
                self._reloading.discard(pid)
                if not self._reloading and self.after_reload is not None:
                    self.after_reload()
            if not self.stopping and not child.replaced:
                young = time.monotonic() - child.started < self.MIN_LIFETIME and (code or signo)
                due = time.monotonic() + (self.MIN_LIFETIME if young else 0.0)
                self._pending_respawn.append((due, child.group, child.id))

    def _respawn_due(self) -> None:
        if not self._pending_respawn:
            return
        now = time.monotonic()
        due = [item for item in self._pending_respawn if item[0] <= now]
        self._pending_respawn = [item for item in self._pending_respawn if item[0] > now]
        for _, group, child_id in due:
            if not self.stopping:
                self.spawn(group, child_id)

    def _kill_overdue(self) -> None:
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.stopping_since is not None and now - child.stopping_since > self.stop_timeout:
                log.warning(
                    "%s %d (pid %d) did not stop in %.1f s: killed",
                    child.group.name,
                    child.id,
                    child.pid,
                    self.stop_timeout,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
                child.stopping_since = float("inf")

    # -- self-pipe -------------------------------------------------------------------------------
    def _install_signals(self) -> None:
        self._wakeup_r, self._wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wakeup_w, warn_on_full_buffer=False)
        for signo in self.SIGNALS:
            self._previous_handlers[signo] = signal.signal(signo, _wake_only)

    def _restore_signals(self) -> None:
        signal.set_wakeup_fd(-1)
        for signo, handler in self._previous_handlers.items():
            signal.signal(signo, handler)  # type: ignore[arg-type]
        self._previous_handlers.clear()
        for fd in (self._wakeup_r, self._wakeup_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _reset_signals_in_child(self) -> None:
        self._watched.clear()
        signal.set_wakeup_fd(-1)
        for signo in self.SIGNALS:
            signal.signal(signo, signal.SIG_DFL)
        for fd in (self._wakeup_r, self._wakeup_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        signal.pthread_sigmask(signal.SIG_SETMASK, self._mask_before_fork)

    def _wait_for_signals(self, timeout: float) -> list[int]:
        try:
            ready, _, _ = select.select([self._wakeup_r, *self._watched], [], [], timeout)
        except InterruptedError:
            ready = [self._wakeup_r]
        for fd in ready:
            callback = self._watched.get(fd)
            if callback is not None:
                try:
                    callback()
                except Exception:
                    log.exception("supervisor: handler of descriptor %d failed", fd)
        if self._wakeup_r not in ready:
            return []
        try:
            data = os.read(self._wakeup_r, 512)
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                raise
            return []
        return list(data)


def _wake_only(signo: int, frame: object) -> None:
    """Python-level handler: the wakeup fd already carries the signal number to the loop."""
