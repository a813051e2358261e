"""Port of ``table.php``: a shared-memory Table with a 2-byte string column.

Run: ``python3 examples/table.py`` (a command-line demo: no server, so no ``--host``/``--port``).
It declares ``Table(1024)`` with ``id`` (int), ``name`` (string, 2 bytes) and ``age`` (int), stores
``user1`` (Jack, 18) and ``user2`` (Tom, 19), and prints both rows the way PHP's ``print_r`` does.
The name column is declared with ``truncate=True``, so ``Jack`` is stored as ``Ja`` and ``Tom`` as
``To``, as in the original. With ``--strict`` the column is declared without truncation and the
first ``set`` fails with a ValueError naming the column and its size, printed to stderr (exit 1).

Fixes and differences from the original:
- Swoole truncates with a warning but always; here truncation is a column's declared choice and the
  default is an error, so values are never cut silently by accident.
- ``age`` is given as the int 18: PHP converted the string ``'18'``; a Table column refuses a value
  of the wrong type (TypeError).
- Integer columns always hold 8 bytes (the original's ``size 2`` meant a 16-bit int in Swoole 4.4).
- ``Table(1024)`` holds 1024 rows whatever the keys (Swoole's could hold fewer).
"""

import argparse
import sys

from pyswoole.shm import Table


def print_r(row: dict) -> None:
    print("Array\n(")
    for name, value in row.items():
        print(f"    [{name}] => {value}")
    print(")")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true", help="refuse too long names instead of truncating")
    args = parser.parse_args()

    table = Table(1024)
    table.column("id", Table.TYPE_INT)
    table.column("name", Table.TYPE_STRING, 2, truncate=not args.strict)
    table.column("age", Table.TYPE_INT)
    table.create()
    try:
        table.set("user1", {"id": 1, "name": "Jack", "age": 18})
        table.set("user2", {"id": 3, "name": "Tom", "age": 19})
    except ValueError as error:
        print(f"set failed: {error}", file=sys.stderr)
        return 1
    print_r(table.get("user1"))
    print_r(table.get("user2"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
