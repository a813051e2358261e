"""Port of ``xrange.php``: an inclusive range generator.

Run: ``python3 examples/xrange.py``. ``xrange(start, limit, step=1)`` yields ``start`` up to and
including ``limit``; a step of the wrong sign raises ``ValueError('Step must be +ve')`` or
``('Step must be -ve')`` (PHP: ``LogicException``). Output, as the original (note the trailing
spaces; ``var_dump`` of an int prints ``int(n)``)::

    1 3 5 7 9
    1 -1 -3 -5 -7 -9
    int(0)
    int(10)
    ...
    int(100)
"""

from collections.abc import Iterator


def xrange(start: int, limit: int, step: int = 1) -> Iterator[int]:
    if start <= limit:
        if step <= 0:
            raise ValueError("Step must be +ve")
        value = start
        while value <= limit:
            yield value
            value += step
    else:
        if step >= 0:
            raise ValueError("Step must be -ve")
        value = start
        while value >= limit:
            yield value
            value += step


def main() -> None:
    for number in xrange(1, 9, 2):
        print(f"{number} ", end="")
    print()
    for number in xrange(1, -9, -2):
        print(f"{number} ", end="")
    print()
    for number in xrange(0, 100, 10):
        print(f"int({number})")


if __name__ == "__main__":
    main()
