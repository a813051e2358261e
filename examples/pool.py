"""Port of Swoole's ``pool.php``: a process pool whose workers come back.

``Pool(5)``: each worker prints `` <worker id> ``, sleeps 2-6 s and returns; the pool replaces it at once
with a new process that has the same id. So ``0`` to ``4`` appear at start and each id again every
2-6 s, for ever. The launched process stays in the foreground as the pool's manager; Ctrl+C or SIGTERM
stops every worker and the manager.

``--workers``, ``--min`` and ``--max`` change the numbers.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from pyswoole.process import Pool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--min", type=float, default=2.0, help="shortest worker life, seconds")
    parser.add_argument("--max", type=float, default=6.0, help="longest worker life, seconds")
    args = parser.parse_args()

    pool = Pool(args.workers)

    @pool.on("worker_start")
    def worker_start(pool: Pool, worker_id: int) -> None:
        sys.stdout.write(f"\n {worker_id} \n")  # one write: five workers share this stdout
        sys.stdout.flush()
        time.sleep(random.uniform(args.min, args.max))

    pool.start()


if __name__ == "__main__":
    main()
