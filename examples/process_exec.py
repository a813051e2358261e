"""Port of ``process_exec.php``: a child replaces itself with an external program.

The child prints ``子进程ID = C`` (no ``的``, as in the original), sleeps, then ``exec``s ``test.sh AA BB``,
which writes ``AA\\nBB\\n`` to ``/tmp/a.txt``. ``exec`` never returns, so ``我将要退出啦`` is never printed;
the parent waits and prints ``子进程(C)退出`` and ``父进程ID = P``.

Fixes: the original's ``test.sh`` had CRLF line endings (``#!/usr/bin/env bash\\r``), so ``exec`` failed
and nothing was written; ours has LF endings. The original ran ``./test.sh`` relative to the current
directory; this port finds ``test.sh`` next to itself. ``--output`` changes the file (passed to the
script as ``A_TXT``) and ``--sleep`` the child's nap.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

TEST_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test.sh")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sleep", type=float, default=2.0, help="seconds before exec (default 2)")
    parser.add_argument("--output", default="/tmp/a.txt", help="file test.sh writes (default /tmp/a.txt)")
    args = parser.parse_args()

    print(f"当前主进程ID = {os.getpid()}", flush=True)
    try:
        pid = os.fork()
    except OSError:
        sys.exit("fork failed.")
    if pid == 0:
        try:
            print(f"子进程ID = {os.getpid()}", flush=True)
            time.sleep(args.sleep)
            os.execve(TEST_SH, [TEST_SH, "AA", "BB"], {**os.environ, "A_TXT": args.output})
        finally:
            os._exit(127)  # reached only if exec failed
    os.waitpid(pid, 0)
    print(f"子进程({pid})退出")
    print(f"父进程ID = {os.getpid()}")


if __name__ == "__main__":
    main()
