"""Port of ``shmop.php``: System V shared memory.

Prints the key ``ftok(<this file>, 't')`` as a decimal number, creates (or opens) a 200-byte segment,
prints ``Size of shmop = 200``, writes ``Hello`` at offset 0, prints ``Bytes of write = 5``, then prints
the whole block followed by a newline: ``Hello`` plus 195 NUL bytes, exactly as the original did.
The segment outlives the program (``ipcs -m`` shows it); ``shmop2.py`` reads it back. ``--key`` replaces
the key (then give ``shmop2.py`` the same one).
"""

from __future__ import annotations

import argparse
import sys

import sysv_ipc

from pyswoole.process import ftok

SIZE = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", type=lambda text: int(text, 0), help="default: ftok(this file, 't')")
    args = parser.parse_args()
    key = ftok(__file__, "t") if args.key is None else args.key
    print(key)
    segment = sysv_ipc.SharedMemory(key, sysv_ipc.IPC_CREAT, mode=0o664, size=SIZE)
    print(f"Size of shmop = {segment.size}")
    data = b"Hello"
    segment.write(data, 0)
    print(f"Bytes of write = {len(data)}", flush=True)
    sys.stdout.buffer.write(segment.read(SIZE, 0) + b"\n")
    segment.detach()


if __name__ == "__main__":
    main()
