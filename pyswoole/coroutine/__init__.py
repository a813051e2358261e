"""Go-style coroutines on asyncio."""

from pyswoole.coroutine.runner import spawn, start

__all__ = ["spawn", "start"]
