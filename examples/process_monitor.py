"""Port of ``process_monitor.php``: keep N children alive.

The parent prints ``当前主进程ID = P`` and forks 3 children; each prints ``子进程的进程ID = C`` and
sleeps forever. Whenever a child dies the parent prints::

    子进程<X>退出.
    中断子进程的信号值是: <signo>

and forks a replacement, so there are always 3.

Fixes: children ask the kernel to kill them when the parent dies (no orphans when the monitor is
killed), and SIGTERM/SIGINT stop the monitor cleanly: it stops and reaps its children, then prints
the original's otherwise unreachable ``完成``. ``--children`` sets N.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from pyswoole.process import die_with_parent


def say(text: str) -> None:
    """One write per message, so that lines of the parent and its children never tear."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def fork_child(parent: int) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the monitor's handler
            die_with_parent(parent)
            say(f"子进程的进程ID = {os.getpid()}")
            while True:
                time.sleep(5)
        finally:
            os._exit(0)
    return pid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=3, help="children to keep alive (default 3)")
    args = parser.parse_args()

    parent = os.getpid()
    signal.signal(signal.SIGTERM, lambda signo, frame: sys.exit(0))
    say(f"当前主进程ID = {parent}")
    children = {fork_child(parent) for _ in range(args.children)}
    try:
        while True:
            pid, status = os.wait()
            signo = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
            say(f"子进程{pid}退出.\n中断子进程的信号值是: {signo}")
            children.discard(pid)
            while len(children) < args.children:
                children.add(fork_child(parent))
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        for pid in children:
            os.waitpid(pid, 0)
    print("完成")


if __name__ == "__main__":
    main()
