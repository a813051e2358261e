"""Port of ``schedule.php``: a round-robin task scheduler on generators.

Run: ``python3 examples/schedule.py``. The ``Scheduler`` keeps a FIFO of generators; ``run()``
takes one, resumes it with ``send(None)`` and puts it back while it is not exhausted. ``task1``
prints ``Task(1) i`` for i = 1..5 and ``task2`` ``Task(2) i`` for i = 1..10, each followed by a
``yield``.

Kept from the original: PHP's ``send()`` on a generator that has not started first runs it to its
first ``yield`` and then resumes it to the next, so each task's first turn prints two lines
(``Task(1) 1``, ``Task(1) 2``, then ``Task(2) 1``, ``Task(2) 2``, then one line per turn). In Python
a fresh generator must be started with ``next()``; ``Task.run`` does that first, then ``send``,
which gives the same output.
"""

from collections import deque
from collections.abc import Generator


class Task:
    def __init__(self, coroutine: Generator[None, None, None]) -> None:
        self.coroutine = coroutine
        self.started = False
        self.finished = False

    def run(self) -> None:
        try:
            if not self.started:  # PHP's first send(): run to the first yield, then resume
                self.started = True
                next(self.coroutine)
            self.coroutine.send(None)
        except StopIteration:
            self.finished = True


class Scheduler:
    def __init__(self) -> None:
        self.queue: deque[Task] = deque()

    def new_task(self, coroutine: Generator[None, None, None]) -> None:
        self.queue.append(Task(coroutine))

    def run(self) -> None:
        while self.queue:
            task = self.queue.popleft()
            task.run()
            if not task.finished:
                self.queue.append(task)


def task1() -> Generator[None, None, None]:
    for i in range(1, 6):
        print(f"Task(1) {i}")
        yield


def task2() -> Generator[None, None, None]:
    for i in range(1, 11):
        print(f"Task(2) {i}")
        yield


def main() -> None:
    scheduler = Scheduler()
    scheduler.new_task(task1())
    scheduler.new_task(task2())
    scheduler.run()


if __name__ == "__main__":
    main()
