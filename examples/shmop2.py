"""Port of ``shmop2.php``: read the segment that ``shmop.py`` wrote.

Opens the 200-byte segment and prints it plus a newline (``Hello`` and 195 NULs after ``shmop.py`` ran;
200 NULs if it had not: the segment is then created empty). The segment stays, as in the original,
unless ``--delete`` is given (the original's commented-out ``shmop_delete``).

Fix: the original hard-coded the key ``1946229499``, the ``ftok`` result on its author's machine (it
depends on the file's inode and device); this port computes ``ftok(shmop.py, 't')`` like ``shmop.py``.
"""

from __future__ import annotations

import argparse
import os
import sys

import sysv_ipc

from pyswoole.process import ftok

SIZE = 200
SHMOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shmop.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delete", action="store_true", help="remove the segment after reading it")
    parser.add_argument("--key", type=lambda text: int(text, 0), help="default: ftok(shmop.py, 't')")
    args = parser.parse_args()

    key = ftok(SHMOP, "t") if args.key is None else args.key
    segment = sysv_ipc.SharedMemory(key, sysv_ipc.IPC_CREAT, mode=0o664, size=SIZE)
    sys.stdout.buffer.write(segment.read(SIZE, 0) + b"\n")
    segment.detach()
    if args.delete:
        segment.remove()


if __name__ == "__main__":
    main()
