"""Shared memory across processes: Table, Atomic, AtomicLong and Lock.

Create these objects before forking (before ``Server.start()``, ``Process.start()``, ``Pool``): their
memory is a shared anonymous mapping that every process forked afterwards sees. See ``docs/shm.md``.
"""

from pyswoole.shm._shm import Atomic, AtomicLong, Lock, Table, TableFullError

__all__ = ["Atomic", "AtomicLong", "Lock", "Table", "TableFullError"]
