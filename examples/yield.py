"""Port of ``yield.php``: PHP generators, as Python generators.

Run: ``python3 examples/yield.py``. Five sections, with the original's output:

- ``yield``: a generator of 1, 2, 3;
- ``send``: ``send('stop')`` at 3 resumes the generator, which yields 4 as the return value of
  ``send`` (thrown away): 4 is never printed, and the generator is not stopped, because it looks at
  the command only after its loop, when the next ``next()`` has sent None (so 0 to 3 are printed);
- key/value pairs: PHP's ``yield $id => $fields`` is a generator of ``(key, value)`` tuples;
- by reference: PHP's ``function &gen()`` + ``foreach (... as &$number)`` lets the loop body change
  the generator's variable; in Python the generator yields a one-element list that both sides
  share (prints ``2...1...0...``);
- ``yield from``: delegation to a list, another generator and an iterator; PHP's
  ``yield 123 => 5`` yields the value 5 (key 123) and a bare ``yield`` yields null, printed as an
  empty line.

Fix: the original's lines end in CRLF, so the three ``Likes ...`` lines end in ``\\r``; not here.
"""

from collections.abc import Iterator

INPUT = """1;PHP;Likes dollar signs
2;Python;Likes whitespace
3;Ruby;Likes blocks"""


def header(title: str, first: bool = False) -> None:
    print(("" if first else "\n") + f"========== {title} ===========")


def one_to_three() -> Iterator[int]:
    yield from range(1, 4)


def numbers() -> Iterator[int]:
    command = None
    for i in range(5):
        command = yield i
    if command == "stop":  # looked at only after the loop: by then next() has sent None
        return


def input_parser(text: str) -> Iterator[tuple[str, list[str]]]:
    for line in text.split("\n"):
        key, *fields = line.split(";")
        yield key, fields


def by_reference() -> Iterator[list[int]]:
    value = [3]
    while value[0] > 0:
        yield value


def seven() -> Iterator[int]:
    yield 7


def delegating() -> Iterator[int | None]:
    yield 123
    yield 5  # PHP: yield 123 => 5
    yield  # PHP: yield; (null)
    yield from [4, 5, 6]
    yield from seven()
    yield from iter([8, 9])


def main() -> None:
    header("yield", first=True)
    for value in one_to_three():
        print(value)

    header("send")
    gen = numbers()
    for value in gen:
        if value == 3:
            gen.send("stop")
        print(value)

    header("生成键值对的生成器")
    for key, fields in input_parser(INPUT):
        print(f"{key}:")
        print(f"    {fields[0]}")
        print(f"    {fields[1]}")

    header("使用引用来生成值")
    for number in by_reference():
        number[0] -= 1
        print(f"{number[0]}...", end="")

    header("yield from")
    for value in delegating():
        print("" if value is None else value)


if __name__ == "__main__":
    main()
