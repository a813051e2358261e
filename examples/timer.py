"""Port of ``timer.php``: a repeating timer and a one-shot timer, no server.

Run: ``python3 examples/timer.py [--scale 1.0]``. The output, over 10 seconds:

====  ==========================================
t     output
====  ==========================================
2 s   ``1`` and ``A - B``
3 s   ``after 3000ms.``
4 s   ``2`` and ``A - B``
6 s   ``3`` and ``A - B``
8 s   ``4`` and ``A - B``
10 s  ``5`` and ``A - B``, then the tick is cleared
====  ==========================================

``Timer.tick(2000, callback, "A", "B")`` calls ``callback(timer_id, "A", "B")`` every 2 s (extra
arguments are passed through); at the 5th call it clears itself with ``Timer.clear(timer_id)``.
``Timer.after(3000, callback)`` runs once. When no timer is left the program ends, as a Swoole
CLI script does when its event loop is empty: here ``await Timer.wait()`` returns.

``--scale`` multiplies every interval (``--scale 0.01`` runs the same timeline in 0.1 s). The
intervals are kept as the original's milliseconds times the scale; timers have millisecond
precision and 0 ms intervals are refused (``ValueError``).
"""

import argparse
import asyncio

from pyswoole import Timer


async def run(scale: float) -> None:
    count = 0

    def on_tick(timer_id: int, p1: str, p2: str) -> None:
        nonlocal count
        count += 1
        print(count)
        print(f"{p1} - {p2}", flush=True)
        if count == 5:
            Timer.clear(timer_id)

    Timer.tick(2000 * scale, on_tick, "A", "B")
    Timer.after(3000 * scale, lambda: print("after 3000ms.", flush=True))
    await Timer.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every interval (default 1.0)")
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error("--scale must be greater than 0")
    asyncio.run(run(args.scale))


if __name__ == "__main__":
    main()
