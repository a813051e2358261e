"""Port of ``process_signal.php``: start, reload and stop a daemon through signals and a pid file.

* ``start``: if the pid file names a live process, print ``程序已经运行`` and exit. Otherwise daemonize
  (as ``process_daemon.py``), write the daemon's pid (no newline) to the pid file, and keep 3 children
  alive. The children ignore SIGTERM: only SIGKILL ends them.
* ``reload``: SIGKILL every child of the daemon; it forks 3 new ones.
* ``stop``: SIGKILL the daemon and its children, wait until the daemon is gone, remove the pid file.
* anything else: ``请重新输入命令!``

Fixes: the original printed a literal backslash-n after ``程序已经运行`` (single-quoted PHP string);
a pid file left behind by a daemon that was killed no longer blocks ``start``; ``stop`` listed the
children with ``ps --ppid`` *after* killing the daemon (they had been re-parented by then, so none were
found and they lived on) and then busy-looped on ``kill(pid, 0)``; this port collects the children
first and polls with a short sleep. Children die with the daemon in any case. ``--pid-file`` replaces
the fixed ``/tmp/master_pid``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from pyswoole.process import Process, die_with_parent

CHILDREN = 3


def stat_fields(pid: int | str) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name: state, ppid, ...; None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def is_running(pid: int) -> bool:
    """Alive and not a zombie (a killed process stays visible to ``kill(pid, 0)`` until reaped)."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def children_of(parent: int) -> list[int]:
    """Pids whose parent is ``parent`` (what ``ps --ppid`` lists)."""
    return [
        int(e) for e in os.listdir("/proc") if e.isdigit() and (stat_fields(e) or ["", "0"])[1] == str(parent)
    ]


def running_pid(pid_file: str) -> int | None:
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if is_running(pid) else None


def fork_child(parent: int) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            die_with_parent(parent, signal.SIGKILL)
            while True:
                time.sleep(5)
        finally:
            os._exit(0)
    return pid


def start(pid_file: str) -> None:
    if running_pid(pid_file) is not None:
        print("程序已经运行")
        return
    Process.daemon()
    os.umask(0)
    daemon = os.getpid()
    with open(pid_file + ".tmp", "w") as f:
        f.write(str(daemon))
    os.rename(pid_file + ".tmp", pid_file)
    children: set[int] = set()
    while True:
        while len(children) < CHILDREN:
            children.add(fork_child(daemon))
        pid, _ = os.wait()
        children.discard(pid)


def reload(pid_file: str) -> None:
    daemon = running_pid(pid_file)
    if daemon is None:
        sys.exit("程序没有运行")
    for child in children_of(daemon):
        Process.kill(child, signal.SIGKILL)


def stop(pid_file: str) -> None:
    daemon = running_pid(pid_file)
    if daemon is not None:
        children = children_of(daemon)
        Process.kill(daemon, signal.SIGKILL)
        for child in children:
            Process.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while is_running(daemon) and time.monotonic() < deadline:
            time.sleep(0.02)
    if os.path.exists(pid_file):
        os.unlink(pid_file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="")
    parser.add_argument("--pid-file", default="/tmp/master_pid", help="default /tmp/master_pid")
    args = parser.parse_args()
    pid_file = os.path.abspath(args.pid_file)
    commands = {"start": start, "reload": reload, "stop": stop}
    if args.command not in commands:
        print("请重新输入命令!")
        return
    commands[args.command](pid_file)


if __name__ == "__main__":
    main()
