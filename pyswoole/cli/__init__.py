"""The ``pyswoole`` command (also ``python -m pyswoole``): start, stop, reload, restart, inspect
and watch a service defined in a Python file or module."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pyswoole.cli.app import AppError, AppSource
from pyswoole.server.operation import pid_alive, query, read_pid_file


def default_pid_file(app_path: str, port: int) -> str:
    return f"/tmp/pyswoole-{Path(app_path).stem}-{port}.pid"


def load(args: argparse.Namespace) -> tuple[AppSource, Any]:
    source = AppSource(args.app, args.server)
    server = source.load()
    if not server.setting["pid_file"]:
        server.setting["pid_file"] = default_pid_file(source.path, server.port)
    return source, server


def pid_file_of(args: argparse.Namespace) -> str:
    if args.pid_file:
        return args.pid_file
    if not args.app:
        raise AppError("name the application file or give --pid-file PATH")
    return load(args)[1].setting["pid_file"]


def running_pid(args: argparse.Namespace) -> int:
    pid_file = pid_file_of(args)
    pid = read_pid_file(pid_file)
    if pid is None or not pid_alive(pid):
        raise AppError(f"not running (pid file {pid_file})")
    return pid


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


# -- commands --------------------------------------------------------------------------------------
def cmd_start(args: argparse.Namespace) -> int:
    _, server = load(args)
    pid = read_pid_file(server.setting["pid_file"])
    if pid is not None and pid_alive(pid) and not args.replace:
        print(f"already running (pid {pid}, pid file {server.setting['pid_file']})", file=sys.stderr)
        return 1
    if args.daemon:
        server.setting["daemonize"] = True
    server.start()
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    pid = running_pid(args)
    os.kill(pid, signal.SIGTERM)
    if wait_gone(pid, args.timeout):
        print(f"stopped (pid {pid})")
        return 0
    os.kill(pid, signal.SIGTERM)  # a second request forces the stop
    if wait_gone(pid, 5):
        print(f"stopped by force (pid {pid})")
        return 0
    print(f"pid {pid} did not stop", file=sys.stderr)
    return 1


def cmd_reload(args: argparse.Namespace) -> int:
    pid = running_pid(args)
    os.kill(pid, signal.SIGUSR2 if args.task else signal.SIGUSR1)
    print(f"reloading {'task workers' if args.task else 'workers'} of pid {pid}")
    return 0


def _start_daemon(
    app: str, server_name: str | None, replacing: int | None = None
) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pyswoole", "start", app, "-d"]
    if server_name:
        argv += ["--server", server_name]
    env = dict(os.environ)
    if replacing:
        argv.append("--replace")
        env["PYSWOOLE_INHERIT_FROM"] = str(replacing)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


def cmd_restart(args: argparse.Namespace) -> int:
    """Zero downtime: the new master takes over the old one's listening sockets, then the old
    one stops accepting and drains; connections waiting in the backlog go to the new one."""
    source, server = load(args)
    pid_file = server.setting["pid_file"]
    old = read_pid_file(pid_file)
    if old is not None and not pid_alive(old):
        old = None
    result = _start_daemon(source.path, args.server, replacing=old)
    new = read_pid_file(pid_file)
    if result.returncode != 0 or new is None or new == old:
        print(f"the new server did not start:\n{result.stderr}", file=sys.stderr)
        return 1
    query(new, "stats")  # answers: it is up
    if old is not None and pid_alive(old):
        os.kill(old, signal.SIGTERM)
        wait_gone(old, server.setting["max_wait_time"] + 10)
    print(f"restarted: pid {old} -> {new}")
    return 0


def _format_bytes(count: int) -> str:
    return f"{count / 1048576:.1f} MiB"


def cmd_status(args: argparse.Namespace) -> int:
    pid = running_pid(args)
    stats = query(pid, "stats")
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    uptime = stats["uptime"]
    print(
        f"pyswoole  master {stats['master_pid']}  manager {stats['manager_pid']}  {stats['mode']}  "
        f"listening {', '.join(stats['listen'])}  up {uptime // 86400}d {time.strftime('%H:%M:%S', time.gmtime(uptime))}"
    )
    print(
        f"connections {stats['connection_num']} (accepted {stats['accept_count']}, closed {stats['close_count']})"
        f"  requests {stats['request_count']}"
    )
    print(f"{'id':<4}{'type':<8}{'pid':<9}{'state':<10}{'connections':<13}{'requests':<11}rss")
    for w in stats["workers"]:
        print(
            f"{w['id']:<4}{w['type']:<8}{w['pid']:<9}{w['state']:<10}{w['connections']:<13}{w['requests']:<11}"
            f"{_format_bytes(w['rss'])}"
        )
    return 0


def cmd_connections(args: argparse.Namespace) -> int:
    pid = running_pid(args)
    rows = query(pid, "connections")
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'fd':<8}{'remote':<28}{'worker':<8}{'connected':<21}{'recv':<12}{'sent':<12}")
    for row in rows:
        remote = f"{row['remote_ip']}:{row['remote_port']}"
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["connect_time"]))
        print(
            f"{row['fd']:<8}{remote:<28}{row['worker_id']:<8}{since:<21}{row['recv_bytes']:<12}{row['sent_bytes']:<12}"
        )
    return 0


def _port_answers(host: str, port: int) -> bool:
    host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _strays(master_pid: int) -> list[int]:
    """Processes left of a daemon whose master was ``master_pid``: its process group."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == master_pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def cmd_check(args: argparse.Namespace) -> int:
    """Cron-friendly: exit 0 if the service is healthy, else clean up and start it again."""
    source, server = load(args)
    pid = read_pid_file(server.setting["pid_file"])
    stream_ports = [p for p in server.ports if p.is_stream and p.type != 5]
    healthy = pid is not None and pid_alive(pid)
    if healthy:
        with contextlib.suppress(OSError, ValueError):
            query(pid, "stats")
            healthy = all(_port_answers(p.host, p.port) for p in stream_ports)
    if healthy:
        print(f"ok (pid {pid})")
        return 0
    for stray in _strays(pid) if pid else []:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stray, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.unlink(server.setting["pid_file"])
    result = _start_daemon(source.path, args.server)
    new = read_pid_file(server.setting["pid_file"])
    if result.returncode != 0 or new is None:
        print(f"restart failed:\n{result.stderr}", file=sys.stderr)
        return 1
    print(f"restarted (pid {new})")
    return 0


def cmd_systemd(args: argparse.Namespace) -> int:
    source, server = load(args)
    name = Path(source.path).stem
    print(
        f"""[Unit]
Description=pyswoole service {name}
After=network.target

[Service]
Type=simple
WorkingDirectory={os.path.dirname(source.path)}
ExecStart={sys.executable} -m pyswoole start {source.path}
ExecReload=/bin/kill -USR1 $MAINPID
KillSignal=SIGTERM
TimeoutStopSec={int(server.setting["max_wait_time"]) + 10}
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target"""
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyswoole", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(
        name: str, handler: Any, help_text: str, app_required: bool = True
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("app", nargs=None if app_required else "?", help="application file or module")
        sub.add_argument("--server", help="name of the Server in the application (if it has several)")
        sub.set_defaults(handler=handler)
        return sub

    start = command("start", cmd_start, "start the service (foreground; -d to daemonize)")
    start.add_argument("-d", "--daemon", action="store_true")
    start.add_argument("--replace", action="store_true", help=argparse.SUPPRESS)
    for name, handler, help_text in (
        ("stop", cmd_stop, "stop gracefully"),
        ("reload", cmd_reload, "reload the workers (new code for their callbacks)"),
        ("status", cmd_status, "show the service's status"),
        ("connections", cmd_connections, "list live connections"),
    ):
        sub = command(name, handler, help_text, app_required=False)
        sub.add_argument("--pid-file")
        if name == "stop":
            sub.add_argument("--timeout", type=float, default=30.0)
        if name == "reload":
            sub.add_argument("--task", action="store_true", help="task workers only")
        if name in ("status", "connections"):
            sub.add_argument("--json", action="store_true")
    command("restart", cmd_restart, "restart with no downtime")
    command("check", cmd_check, "exit 0 if healthy, else kill strays and start again (for cron)")
    command("systemd", cmd_systemd, "print a systemd unit for the service")
    _add_optional_commands(commands)
    return parser


def _add_optional_commands(commands: Any) -> None:
    """Commands contributed by other layers (``serve`` runs ASGI/WSGI applications)."""
    if importlib.util.find_spec("pyswoole.cli.serve") is None:
        return
    from pyswoole.cli import serve

    parser = serve.add_parser(commands)
    if parser is not None and parser.get_default("handler") is None:
        parser.set_defaults(handler=serve.run)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except AppError as exc:
        print(f"pyswoole: {exc}", file=sys.stderr)
        return 1
