"""Port of Swoole's ``signal.php``: reap children from a SIGCHLD listener with ``Process.wait``.

Five children each sleep 2-6 s. The parent listens for SIGCHLD; the listener prints `` 17 `` (the
signal number) and then, for every child that has exited (one SIGCHLD may stand for several), PHP's
``print_r`` of ``Process.wait(False)``: ``[pid]``, ``[code]``, ``[signal]``. The parent prints ``end``
and keeps running only for its signal listener.

Fix: on Swoole 4.4 an event loop holding only signal listeners exits at once, so the original printed
``end`` and quit, orphaning its children. This port does what the demo meant: ``wait_signals()`` keeps
the parent up while the listener is registered, and the listener removes itself once all 5 children
are reaped, so the program ends. The listener is also registered before the children start, so no
early exit is missed. ``--children``, ``--min`` and ``--max`` change the numbers.

About the name: run as ``python3 examples/signal.py``, this folder is first on ``sys.path``, so
``import signal`` anywhere (asyncio does it) would find this file instead of the standard module, and
so would every other example started from this folder. When imported as ``signal`` the file therefore
replaces itself with the standard module, and as a script it drops its folder from ``sys.path`` first.
"""

if __name__ != "__main__":
    # Imported as "signal" because this folder is on sys.path: become the standard library's module.
    import importlib.util as _util
    import sys as _sys
    import sysconfig as _sysconfig

    _spec = _util.spec_from_file_location("signal", _sysconfig.get_path("stdlib") + "/signal.py")
    _module = _util.module_from_spec(_spec)
    _sys.modules["signal"] = _module
    _spec.loader.exec_module(_module)
else:
    import os
    import sys

    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

    import argparse
    import random
    import signal
    import time

    from pyswoole.process import Process, wait_signals

    def print_r(status: dict[str, int]) -> str:
        """PHP's ``print_r`` of a flat array."""
        return "Array\n(\n" + "".join(f"    [{key}] => {value}\n" for key, value in status.items()) + ")\n"

    def main() -> None:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--children", type=int, default=5)
        parser.add_argument("--min", type=float, default=2.0, help="shortest child sleep, seconds")
        parser.add_argument("--max", type=float, default=6.0, help="longest child sleep, seconds")
        args = parser.parse_args()
        reaped = 0

        def on_child(signo: int) -> None:
            nonlocal reaped
            sys.stdout.write(f"\n {signo} \n")
            while (status := Process.wait(blocking=False)) is not None:
                sys.stdout.write(print_r(status))
                reaped += 1
            sys.stdout.flush()
            if reaped == args.children:
                Process.signal(signal.SIGCHLD, None)

        Process.signal(signal.SIGCHLD, on_child)
        for _ in range(args.children):
            # Python reseeds `random` in every forked child, so the durations differ, as in the original.
            Process(
                lambda p: time.sleep(random.uniform(args.min, args.max)), pipe_type=Process.PIPE_NONE
            ).start()
        print("end", end="", flush=True)
        wait_signals()

    main()
