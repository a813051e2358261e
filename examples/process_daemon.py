"""Port of ``process_daemon.php``: daemonize, then keep 3 children alive.

``Process.daemon()`` forks (the shell gets its prompt back at once), starts a new session, changes to
``/``; then ``umask(0)``. The daemon forks 3 children that sleep forever and waits for them. Nothing is
printed.

Fixes:

* the original's refork test was ``count > 3`` (a typo), so dead children were never replaced and the
  daemon quit once all 3 had died; this port keeps 3 alive;
* the original closed fds 0-2; the next ``open()`` would then get fd 0, 1 or 2 and stray prints would land
  in it. They point at ``/dev/null`` instead;
* children die with the daemon (no orphans), and SIGTERM stops the children, reaps them and removes
  the ``--pid-file`` (optional, so that scripts and tests can find the daemon).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time

from pyswoole.process import Process, die_with_parent

CHILDREN = 3


def fork_child(parent: int) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the daemon's handler
            die_with_parent(parent)
            while True:
                time.sleep(5)
        finally:
            os._exit(0)
    return pid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid-file", help="write the daemon's pid here (removed on SIGTERM)")
    args = parser.parse_args()
    pid_file = os.path.abspath(args.pid_file) if args.pid_file else None

    Process.daemon()
    os.umask(0)
    signal.signal(signal.SIGTERM, lambda signo, frame: sys.exit(0))
    daemon = os.getpid()
    children: set[int] = set()
    try:
        if pid_file:
            with open(pid_file + ".tmp", "w") as f:
                f.write(str(daemon))
            os.rename(pid_file + ".tmp", pid_file)
        while True:
            while len(children) < CHILDREN:
                children.add(fork_child(daemon))
            pid, _ = os.wait()
            children.discard(pid)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        if pid_file and os.path.exists(pid_file):
            os.unlink(pid_file)


if __name__ == "__main__":
    main()
