"""The process tests' guard: no test may leave an orphan behind, and the zombies it made are reaped.

During each test the pytest process is a child subreaper (``PR_SET_CHILD_SUBREAPER``): a process
whose parent dies while the test runs (a daemon, a pool worker whose manager was killed, the
children of a killed example) becomes a child of pytest instead of init's. After the test, and after
its own fixtures have cleaned up, every such new child must end within a few seconds: one that is
still running is an orphan, which fails the test (and is killed). The dead ones are reaped here.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Iterator

import pytest

_PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)
#: Seconds a stray gets to end by itself (parent-death signals, a stopping pool) before it counts.
GRACE = 5.0


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def children(parent: int) -> set[int]:
    """Pids whose parent is ``parent`` (zombies included)."""
    return {
        int(e) for e in os.listdir("/proc") if e.isdigit() and (_stat(int(e)) or ["", ""])[1] == str(parent)
    }


def _running(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        return f"{pid} {command}"
    except OSError:
        return str(pid)


def _descendants(pids: set[int]) -> set[int]:
    found, todo = set(), set(pids)
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo |= children(pid) - found
    return found


def _reap(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


@pytest.fixture(autouse=True)
def no_strays() -> Iterator[None]:
    """Fail a test that leaves a running process behind; reap what it left dead."""
    me = os.getpid()
    before = children(me)
    if _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.fail(f"prctl(PR_SET_CHILD_SUBREAPER) failed: errno {ctypes.get_errno()}")
    try:
        yield
    finally:
        _libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    deadline = time.monotonic() + GRACE
    while True:
        new = children(me) - before
        _reap({pid for pid in new if not _running(pid)})
        alive = {pid for pid in new if _running(pid)}
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    if alive:
        strays = _descendants(alive)
        described = [_describe(pid) for pid in sorted(strays)]
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in alive:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        pytest.fail(f"processes left running after the test: {described}")
