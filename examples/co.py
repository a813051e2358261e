"""Port of ``co.php``: CSP coroutines; 1000 sleepers finish together.

Run: ``python3 examples/co.py [--count 1000] [--seconds 5]``. Prints ``count`` ``A`` characters at
once, then, ``seconds`` later, ``count`` ``B`` characters: the whole run takes about ``seconds``,
not ``count * seconds``, because every coroutine sleeps at the same time (``co.sleep`` suspends only
its coroutine). Like the original, ``max_coroutine`` is set to 2000.
"""

import argparse
import sys

from pyswoole import coroutine as co


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="coroutines to start")
    parser.add_argument("--seconds", type=float, default=5, help="how long each one sleeps")
    args = parser.parse_args()

    async def sleeper() -> None:
        sys.stdout.write("A")
        sys.stdout.flush()
        await co.sleep(args.seconds)
        sys.stdout.write("B")

    def start() -> None:
        for _ in range(args.count):
            co.go(sleeper)

    co.set({"max_coroutine": max(2000, args.count + 1)})
    co.run(start)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
