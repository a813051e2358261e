"""Port of ``coroutine.php``: ``go`` + ``defer``; prints ``abc~b~a``.

Run: ``python3 examples/coroutine.py [--seconds 1]``. Prints ``ab`` at once, then ``seconds`` later
``c~b~a`` (no newline, as the original): defers run when the coroutine exits, last registered
first. The plain ``time.sleep`` suspends only the coroutine because the runtime hooks are on. (The
original's sequential, concurrent and channel examples are commented out; only this part runs.)
"""

import argparse
import sys
import time

from pyswoole import coroutine as co
from pyswoole import runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="how long the coroutine sleeps")
    args = parser.parse_args()
    runtime.enable_coroutine()

    def echo(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def task() -> None:
        echo("a")
        co.defer(echo, "~a")
        echo("b")
        co.defer(echo, "~b")
        time.sleep(args.seconds)
        echo("c")

    co.run(task)


if __name__ == "__main__":
    main()
