"""System V message queues (``ipcs -q``), the IPC behind ``Process.use_queue`` and ``Pool(IPC_MSGQUEUE)``.

A thin layer over the ``sysv_ipc`` package with Swoole's verbs: ``push``/``pop``/``stat``/``free``.
Every reader that waits on the same message type competes: the kernel hands each message to exactly
one of them. A ``pop`` that a signal interrupts is retried once the signal's Python handler has run.
"""

from __future__ import annotations

import os
import sys

import sysv_ipc

#: The kernel's per-message limit (``/proc/sys/kernel/msgmax``) on a default Linux; also ``pop``'s default.
DEFAULT_MESSAGE_SIZE = 8192


def ftok(path: str, project: int | str) -> int:
    """System V key for ``path`` and a one-byte project id (PHP's ``ftok($path, 't')`` takes a letter)."""
    project_id = ord(project) if isinstance(project, str) else project
    return sysv_ipc.ftok(path, project_id, silence_warning=True)


# Resolved at import, before a daemon's chdir("/") could change what a relative argv[0] means.
_SCRIPT = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""


def script_key(project: int | str = 1) -> int | None:
    """``ftok(<the running script>, project)``, Swoole's default queue key; None when there is no script."""
    return ftok(_SCRIPT, project) if os.path.isfile(_SCRIPT) else None


class MessageQueue:
    """One System V message queue, created if it does not exist (``key=None``: a new queue with an unused key)."""

    __slots__ = ("_queue", "max_message_size")

    def __init__(self, key: int | None = None, max_message_size: int = DEFAULT_MESSAGE_SIZE) -> None:
        self.max_message_size = max_message_size
        flags = sysv_ipc.IPC_CREX if key is None else sysv_ipc.IPC_CREAT
        self._queue = sysv_ipc.MessageQueue(key, flags, mode=0o666, max_message_size=max_message_size)

    @property
    def key(self) -> int:
        return self._queue.key

    @property
    def id(self) -> int:
        return self._queue.id

    def set_capacity(self, nbytes: int) -> None:
        """Limit the bytes the queue holds (raising it above ``msgmnb`` needs CAP_SYS_RESOURCE)."""
        self._queue.max_size = nbytes

    def push(self, data: bytes | str, block: bool = True, mtype: int = 1) -> bool:
        """Append one message; False when ``block`` is off and the queue is full."""
        if isinstance(data, str):
            data = data.encode()
        if len(data) > self.max_message_size:
            raise ValueError(f"message of {len(data)} bytes exceeds the queue's {self.max_message_size}")
        while True:
            try:
                self._queue.send(data, block, mtype)
                return True
            except sysv_ipc.BusyError:
                return False
            except sysv_ipc.ExistentialError:
                raise
            except sysv_ipc.Error as exc:
                if not _interrupted(exc):
                    raise

    def pop(self, block: bool = True, mtype: int = 0) -> bytes | None:
        """Take one message; None when the queue is empty (``block`` off) or has been freed."""
        while True:
            try:
                message, _ = self._queue.receive(block, mtype)
                return message
            except (sysv_ipc.BusyError, sysv_ipc.ExistentialError):
                return None
            except sysv_ipc.Error as exc:
                if not _interrupted(exc):
                    raise

    def stat(self) -> dict[str, int]:
        """``{"queue_num": messages waiting, "queue_bytes": bytes waiting}`` (Swoole's ``statQueue``)."""
        with open("/proc/sysvipc/msg") as table:
            next(table)
            for line in table:
                fields = line.split()
                if int(fields[1]) == self._queue.id:
                    return {"queue_num": int(fields[4]), "queue_bytes": int(fields[3])}
        raise sysv_ipc.ExistentialError("the queue no longer exists")

    def free(self) -> None:
        """Remove the queue from the system; blocked readers wake up with None."""
        try:
            self._queue.remove()
        except sysv_ipc.ExistentialError:
            pass

    def __repr__(self) -> str:
        return f"MessageQueue(key={self._queue.key:#x}, id={self._queue.id})"


def _interrupted(exc: sysv_ipc.Error) -> bool:
    """sysv_ipc reports EINTR as its base ``Error``; every other failure has its own subclass."""
    return type(exc) is sysv_ipc.Error and "Signaled" in str(exc)
