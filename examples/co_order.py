"""Port of ``co_order.php``: the order in which coroutines run.

Run: ``python3 examples/co_order.py [--scale 1]``. Output (the ``child co end`` lines come 1 and 2
seconds later, times ``--scale``)::

    main co start 1
    child co start 2
    child co start 3
    main co end 1
    end
    child co end 3
    child co end 2

What it shows: ``go()`` runs the new coroutine at once, up to its first suspension; a coroutine
yields only at I/O (here the hooked ``time.sleep``), never in between; a parent does not wait for
its children. ``end`` is printed by the program itself (not a coroutine) once ``go()`` returns.
"""

import argparse
import time

import uvloop

from pyswoole import coroutine as co
from pyswoole import runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the sleeps (1 and 2 s) by this")
    args = parser.parse_args()
    runtime.enable_coroutine()
    co.set({"max_coroutine": 2000})

    def child(seconds: float) -> None:
        print(f"child co start {co.get_cid()}", flush=True)
        time.sleep(seconds * args.scale)
        print(f"child co end {co.get_cid()}", flush=True)

    def main_co() -> None:
        print(f"main co start {co.get_cid()}", flush=True)
        co.go(child, 2)
        co.go(child, 1)
        print(f"main co end {co.get_cid()}", flush=True)

    async def program() -> None:
        co.go(main_co)
        print("end", flush=True)
        await co.join(co.list())

    uvloop.run(program())


if __name__ == "__main__":
    main()
