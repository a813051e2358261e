"""Port of Swoole's ``push_pop.php``: a System V message queue with 5 competing consumers.

Five children (``process child``) share the queue ``ftok(<this script>, 1)`` and loop on ``pop()``,
printing `` <own pid> received msg <m> `` for each message. The master (``process master``) waits 1 s,
then every 2 s prints `` ======================== `` and pushes ``a`` to ``e``; each message is taken
by exactly one child. ``ipcs -q`` shows the queue while it runs.

Fixes: the original never freed the queue, so messages left over from one run were delivered in the
next, and its children could only be killed one by one. Now SIGINT/SIGTERM (or the end of
``--rounds``) frees the queue, which makes every child's ``pop()`` return None, so they exit and are
reaped. ``--rounds`` (default 0: forever), ``--interval`` and ``--start-delay`` change the timing, ``--queue-key``
the queue.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from pyswoole.process import Process

CHILDREN = 5
MESSAGES = "abcde"


def say(text: str) -> None:
    sys.stdout.write(f"\n {text} \n")  # one write per line: five children share this stdout
    sys.stdout.flush()


def consume(p: Process, quiet: bool) -> None:
    p.name("process child")
    while (message := p.pop()) is not None:
        if not quiet:
            say(f"{p.pid} received msg {message.decode()}")


def run(
    rounds: int, interval: float, start_delay: float, quiet: bool = False, key: int | None = None
) -> None:
    """Start the consumers, push a..e every ``interval`` seconds; free the queue and reap on exit.

    ``key`` None means Swoole's default, ``ftok(<the running script>, 1)``.
    """
    stop = lambda signo: sys.exit(0)  # noqa: E731 - unwinds into the cleanup below
    Process.signal(signal.SIGTERM, stop)
    Process.signal(signal.SIGINT, stop)
    children = []
    try:
        for _ in range(CHILDREN):
            p = Process(lambda p: consume(p, quiet), pipe_type=Process.PIPE_NONE)
            p.use_queue(key)
            p.start()
            children.append(p)
        children[-1].name("process master")
        time.sleep(start_delay)
        done = 0
        while rounds == 0 or done < rounds:
            if not quiet:
                say("========================")
            for message in MESSAGES:
                children[-1].push(message)
            done += 1
            time.sleep(interval)
    finally:
        if children:
            children[-1].free_queue()
            for _ in children:
                Process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=0, help="rounds of a..e, 0 for ever (default)")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--start-delay", type=float, default=1.0)
    parser.add_argument("--queue-key", type=lambda text: int(text, 0), help="default: ftok(this file, 1)")
    args = parser.parse_args()
    run(args.rounds, args.interval, args.start_delay, key=args.queue_key)


if __name__ == "__main__":
    main()
