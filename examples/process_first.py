"""Port of ``process_first.php``: the first fork.

The parent prints its pid and forks; the child prints its own pid, sleeps, says it is leaving and
exits; the parent waits for it, then reports the exit and its own pid::

    当前主进程ID = P
    子进程的ID = C
    我将要退出啦
    子进程(C)退出
    父进程ID = P

Fix: the original waits with ``WUNTRACED``, so a child that is merely stopped (Ctrl+Z, SIGSTOP) would
be reported as exited; this port waits for a real exit. ``--sleep`` sets the child's nap (2 s).
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sleep", type=float, default=2.0, help="seconds the child sleeps (default 2)")
    args = parser.parse_args()

    print(f"当前主进程ID = {os.getpid()}", flush=True)
    try:
        pid = os.fork()
    except OSError:
        sys.exit("fork failed.")
    if pid == 0:
        print(f"子进程的ID = {os.getpid()}", flush=True)
        time.sleep(args.sleep)
        print("我将要退出啦", flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
    print(f"子进程({pid})退出")
    print(f"父进程ID = {os.getpid()}")


if __name__ == "__main__":
    main()
