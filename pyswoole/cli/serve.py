"""``pyswoole serve module:app``: run an ASGI 3 (default) or WSGI application on pyswoole's HTTP
server, with its workers, task workers and settings.

    pyswoole serve myapp:app --port 8000 --workers 4
    pyswoole serve myapp:app --interface wsgi --threads 16
    pyswoole serve myapp:app --reload                 # restart when a .py file changes
    pyswoole serve myapp:app -s http_compression=true -s package_max_length=104857600

Defaults differ from ``pyswoole.http.Server`` where applications expect it: responses are not
compressed (frameworks have their own middleware) and form bodies are not pre-parsed (the
application reads the raw body); ``-s http_compression=true`` and the like turn them back on.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyswoole.constants import BASE, PROCESS

log = logging.getLogger("pyswoole")

#: Settings ``serve`` uses unless ``--setting`` says otherwise.
SERVE_DEFAULTS: dict[str, Any] = {
    "http_compression": False,
    "http_parse_post": False,
    "http_parse_files": False,
    "http_parse_cookie": False,
    "package_max_length": 64 * 1024 * 1024,
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("serve", help="run an ASGI or WSGI application", description=__doc__)
    configure(parser)
    parser.set_defaults(handler=run)
    return parser


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="module:app", help="the application, e.g. mypkg.web:app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--interface", choices=["asgi", "wsgi"], default="asgi")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--task-workers", type=int, default=0, help="task worker processes")
    parser.add_argument("--mode", choices=["base", "process"], default="base", help="process model")
    parser.add_argument("--threads", type=int, default=10, help="WSGI threads per worker")
    parser.add_argument("--lifespan", choices=["auto", "on", "off"], default="auto")
    parser.add_argument(
        "--ws",
        choices=["auto", "none"],
        default="auto",
        help="ASGI websocket scope (none: HTTP only, a bit faster)",
    )
    parser.add_argument("--factory", action="store_true", help="module:app is a function returning the app")
    parser.add_argument("--reload", action="store_true", help="restart on code change (development)")
    parser.add_argument("--reload-dir", action="append", default=[], help="directory to watch (default: .)")
    parser.add_argument("--ssl-certfile")
    parser.add_argument("--ssl-keyfile")
    parser.add_argument(
        "-s",
        "--setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any server setting; VALUE is JSON (numbers, true/false, strings, lists) or a plain string",
    )


def parse_settings(items: list[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"pyswoole serve: --setting expects KEY=VALUE, got {item!r}")
        try:
            settings[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            settings[key.strip()] = text
    return settings


def load_app(target: str, factory: bool = False) -> Any:
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise SystemExit(f"pyswoole serve: expected module:app, got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    app: Any = module
    for part in attribute.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise SystemExit(f"pyswoole serve: {module_name!r} has no attribute {attribute!r}") from None
    return app() if factory else app


def build_server(args: argparse.Namespace) -> Any:
    if args.interface == "asgi" and args.ws == "auto":
        from pyswoole.websocket import Server
    else:
        from pyswoole.http import Server

    app = load_app(args.target, args.factory)
    server = Server(args.host, args.port, BASE if args.mode == "base" else PROCESS)
    settings = {**SERVE_DEFAULTS, "worker_num": args.workers, "task_worker_num": args.task_workers}
    if args.ssl_certfile:
        settings["ssl_cert_file"] = args.ssl_certfile
        settings["ssl_key_file"] = args.ssl_keyfile or args.ssl_certfile
    settings.update(parse_settings(args.setting))
    server.set(settings)
    if args.task_workers:
        server.on("task", lambda server, task_id, src_worker_id, data: None)
    if args.interface == "wsgi":
        from pyswoole import wsgi

        wsgi.attach(server, app, threads=args.threads)
    else:
        from pyswoole import asgi

        asgi.attach(server, app, lifespan=args.lifespan)
    return server


def run(args: argparse.Namespace) -> int:
    if args.reload:
        return reload_loop(args)
    server = build_server(args)
    print(
        f"pyswoole serve: {args.interface.upper()} {args.target} on http://{args.host}:{server.port}",
        flush=True,
    )
    server.start()
    return 0


# -- --reload: a watcher process that restarts the server when a source file changes ---------------------
def _sources(dirs: list[str]) -> Iterator[Path]:
    for directory in dirs:
        for path in Path(directory).rglob("*.py"):
            if not any(part.startswith(".") or part == "__pycache__" for part in path.parts):
                yield path


def _snapshot(dirs: list[str]) -> dict[Path, float]:
    stamps = {}
    for path in _sources(dirs):
        try:
            stamps[path] = path.stat().st_mtime
        except OSError:
            continue
    return stamps


def reload_loop(args: argparse.Namespace, interval: float = 0.5) -> int:
    """Run the server in a child process; restart it whenever a watched ``.py`` file changes."""
    dirs = args.reload_dir or ["."]
    argv = [sys.executable, "-m", "pyswoole.cli.serve", *[a for a in sys.argv[1:] if a != "--reload"]]
    if "serve" in argv[3:4]:
        argv.pop(3)
    stopping = False

    def stop(signo: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        stamps = _snapshot(dirs)
        child = subprocess.Popen(argv)
        print(f"pyswoole serve: watching {', '.join(dirs)} for changes (pid {child.pid})", flush=True)
        changed = False
        while not stopping and not changed and child.poll() is None:
            time.sleep(interval)
            changed = _snapshot(dirs) != stamps
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if changed:
            print("pyswoole serve: change detected, restarting", flush=True)
        elif not stopping:  # the server exited by itself: wait for a fix before starting again
            while not stopping and _snapshot(dirs) == stamps:
                time.sleep(interval)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyswoole serve", description=__doc__)
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
