"""Processes: the supervisor shared by the server's manager and the process pools."""

from pyswoole.process.msgqueue import MessageQueue, ftok
from pyswoole.process.pool import IPC_MSGQUEUE, IPC_NONE, IPC_SOCKET, IPC_UNIXSOCK, Manager, Pool
from pyswoole.process.process import PipeSocket, Process
from pyswoole.process.signals import signals_drained, wait_signals
from pyswoole.process.supervisor import Child, ChildGroup, Supervisor, die_with_parent

__all__ = [
    "IPC_MSGQUEUE",
    "IPC_NONE",
    "IPC_SOCKET",
    "IPC_UNIXSOCK",
    "Child",
    "ChildGroup",
    "Manager",
    "MessageQueue",
    "PipeSocket",
    "Pool",
    "Process",
    "Supervisor",
    "die_with_parent",
    "ftok",
    "signals_drained",
    "wait_signals",
]
