"""A forked child starts with none of its parent's coroutines (and prints what it printed)."""

import os
import subprocess
import sys
import time

from pyswoole import coroutine as co

CHILD_OF_A_COROUTINE = """
import os, time
from pyswoole import coroutine as co

async def parent():
    co.go(co.sleep, 3)  # left running in the parent
    pid = os.fork()
    if pid == 0:
        started = time.monotonic()
        co.run(lambda: None)  # must not wait for the parent's coroutine
        os._exit(0 if time.monotonic() - started < 1.5 else 1)
    print("child", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)

co.run(parent)
"""


def test_coroutines_of_the_parent_do_not_exist_in_a_forked_child():
    result = subprocess.run(
        [sys.executable, "-c", CHILD_OF_A_COROUTINE], capture_output=True, text=True, timeout=30
    )
    assert result.stdout.strip() == "child 0", result.stderr


def test_live_coroutines_are_counted_in_the_parent():
    async def main() -> None:
        co.go(co.sleep, 0.2)
        assert co.stats()["coroutine_num"] >= 1
        pid = os.fork()
        if pid == 0:
            os._exit(0 if co.stats()["coroutine_num"] == 0 else 1)
        deadline = time.monotonic() + 10
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            await co.sleep(0.01)
        assert os.waitstatus_to_exitcode(done[1]) == 0

    co.run(main)
