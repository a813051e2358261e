"""Processes: the supervisor shared by the server's manager and the process pools."""

from pyswoole.process.supervisor import Child, ChildGroup, Supervisor, die_with_parent

__all__ = ["Child", "ChildGroup", "Supervisor", "die_with_parent"]
