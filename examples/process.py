"""Port of Swoole's ``process.php``: create child processes.

Starts 5 children (the original's comment says 4; its loop makes 5). Each names itself
``process child`` and sleeps 5 s; the parent names itself ``process master`` and sleeps 10 s. In ``ps``:
one ``process master`` with 5 ``process child`` children.

Fix: nobody reaped the original's children, so from 5 s to 10 s they were zombies (``<defunct>``). The
master now reaps each child as it exits (a SIGCHLD listener calling ``Process.wait``), and prints
nothing more than the original. ``--children``, ``--child-sleep`` and ``--master-sleep`` change the
numbers.
"""

from __future__ import annotations

import argparse
import signal
import time

from pyswoole.process import Process


def reap(signo: int) -> None:
    while Process.wait(blocking=False) is not None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=5)
    parser.add_argument("--child-sleep", type=float, default=5.0)
    parser.add_argument("--master-sleep", type=float, default=10.0)
    args = parser.parse_args()

    def child(p: Process) -> None:
        p.name("process child")
        time.sleep(args.child_sleep)

    Process.signal(signal.SIGCHLD, reap)
    for _ in range(args.children):
        p = Process(child)
        p.name("process master")
        p.start()
    time.sleep(args.master_sleep)  # a signal interrupts the sleep only to run its listener
    Process.signal(signal.SIGCHLD, None)
    reap(signal.SIGCHLD)


if __name__ == "__main__":
    main()
