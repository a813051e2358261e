"""Port of ``co_runtime.php``: one call makes plain blocking code concurrent.

Run: ``python3 examples/co_runtime.py [--count 1000] [--seconds 5]``. The same as ``co.py``, but each
coroutine is a plain function calling the ordinary ``time.sleep``: after
``runtime.enable_coroutine()`` (at program start, as the original advises), a blocking call inside a
coroutine suspends only that coroutine. Output: ``count`` ``A`` at once, ``count`` ``B`` about
``seconds`` later, in about ``seconds`` overall. Outside coroutines ``time.sleep`` still blocks.
"""

import argparse
import sys
import time

from pyswoole import coroutine as co
from pyswoole import runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="coroutines to start")
    parser.add_argument("--seconds", type=float, default=5, help="how long each one sleeps")
    args = parser.parse_args()
    runtime.enable_coroutine()

    def sleeper() -> None:
        sys.stdout.write("A")
        sys.stdout.flush()
        time.sleep(args.seconds)  # hooked: suspends this coroutine only
        sys.stdout.write("B")

    def start() -> None:
        for _ in range(args.count):
            co.go(sleeper)

    co.set({"max_coroutine": max(2000, args.count + 1)})
    co.run(start)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
