"""Port of Swoole's ``daemon.php``: ``push_pop.py`` as a daemon.

``Process.daemon()`` detaches (new session, cwd ``/``, stdio on ``/dev/null``; the shell returns at
once), then the daemon does what ``push_pop.py`` does, silently, for ever: 5 ``process child``
consumers compete on the queue ``ftok(<this script>, 1)`` while the ``process master`` pushes ``a`` to
``e`` every 2 s. ``ipcs -q`` shows the queue, which stays about empty.

Fixes (as in ``push_pop.py``): SIGTERM frees the queue and stops the children, so nothing is left
behind; ``--pid-file`` (optional) records the daemon's pid for scripts and tests and is removed on exit;
``--queue-key`` replaces the default key.
"""

from __future__ import annotations

import argparse
import os

from push_pop import run

from pyswoole.process import Process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid-file", help="write the daemon's pid here (removed on exit)")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--queue-key", type=lambda text: int(text, 0), help="default: ftok(this file, 1)")
    args = parser.parse_args()
    pid_file = os.path.abspath(args.pid_file) if args.pid_file else None

    Process.daemon()
    if pid_file:
        with open(pid_file + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pid_file + ".tmp", pid_file)
    try:
        run(rounds=0, interval=args.interval, start_delay=1.0, quiet=True, key=args.queue_key)
    finally:
        if pid_file and os.path.exists(pid_file):
            os.unlink(pid_file)


if __name__ == "__main__":
    main()
