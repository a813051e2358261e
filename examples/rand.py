"""Port of ``rand.php``: random numbers after fork.

The parent seeds a generator, then starts 3 ``Process`` children; each prints ``\\n<rand(0, 10)>\\n`` and
exits. Because every child inherits the parent's generator state, the three numbers are the same
(``7``, ``7``, ``7``), exactly what the original shows with ``srand()`` before the fork.

In Python this concerns generators you create yourself (``random.Random``, numpy's, ...): the module-level
``random`` functions are reseeded in every forked child by CPython itself. ``--fix`` applies the
original's commented-out remedy: each child reseeds its generator first, and the numbers differ.
Also fixed: the original slept 1 s and never reaped its children; this port waits for them.
"""

from __future__ import annotations

import argparse
import random
import sys

from pyswoole.process import Process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fix", action="store_true", help="reseed the generator in each child")
    parser.add_argument("--children", type=int, default=3)
    args = parser.parse_args()

    rng = random.Random()  # seeded here, in the parent, like srand() in the original

    def child(p: Process) -> None:
        if args.fix:
            rng.seed()
        sys.stdout.write(f"\n{rng.randint(0, 10)}\n")
        p.exit()

    for _ in range(args.children):
        Process(child, pipe_type=Process.PIPE_NONE).start()
    for _ in range(args.children):
        Process.wait()


if __name__ == "__main__":
    main()
