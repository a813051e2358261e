"""Port of ``go_defer.php``: Go-style ``defer`` without coroutines; prints ``hello world!``.

Run: ``python3 examples/go_defer.py``. The original collects callables in an object whose
destructor runs them in reverse order when the function returns. Python's form of that is
``contextlib.ExitStack``: callbacks registered on it run last-in first-out when the ``with`` block
ends (also on an exception). ``test()`` defers ``world!`` and then prints ``hello `` itself, so the
output is ``hello world!`` (no newline, as the original). Inside coroutines use ``co.defer``, which
runs at coroutine exit.
"""

import contextlib
import sys


def echo(text: str) -> None:
    sys.stdout.write(text)


def test() -> None:
    with contextlib.ExitStack() as defer:
        defer.callback(echo, "world!")
        defer.callback(echo, "hello ")


if __name__ == "__main__":
    test()
