"""Port of Swoole's ``write_read.php``: parent and child talk through the process pipe.

The pipe keeps message boundaries (one ``write`` is one ``read``). The child (``process child``) prints
`` child send start``, writes ``from child, hello``, prints `` child send end``, then reads and prints
`` received from master: form master, hello ~`` (the original's typo ``form`` kept, it is on the wire).
The master (``process master``) prints `` received from child: from child, hello``, answers, sleeps.
Every line is preceded by an empty line, as in the original; child and master lines may interleave.

Fix: the master now reaps the child (the original left a zombie for its 10 s sleep). ``--master-sleep``
sets that sleep.
"""

from __future__ import annotations

import argparse
import sys
import time

from pyswoole.process import Process


def say(text: str) -> None:
    """One write per line: output of the two processes never tears a line."""
    sys.stdout.write(f"\n {text}\n")
    sys.stdout.flush()


def child(p: Process) -> None:
    p.name("process child")
    say("child send start")
    p.write("from child, hello")
    say("child send end")
    say("received from master: " + p.read().decode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master-sleep", type=float, default=10.0)
    args = parser.parse_args()

    p = Process(child)
    p.name("process master")
    p.start()
    say("received from child: " + p.read().decode())
    p.write("form master, hello ~")
    Process.wait()
    time.sleep(args.master_sleep)


if __name__ == "__main__":
    main()
