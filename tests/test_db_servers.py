"""The test servers of tests/db_servers.py never outlive the test process, even a killed one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from helpers import ROOT, wait_for

import tests.db_servers as db_servers

SESSION = textwrap.dedent(
    """
    import os, signal, sys, threading
    sys.path.insert(0, {root!r})
    from tests.db_servers import RedisServer, require_binary
    from pathlib import Path

    server = RedisServer(require_binary("redis-server", "redis-server"), Path({directory!r}))
    thread = threading.Thread(target=server.restart)  # started from a short-lived thread
    thread.start()
    thread.join()
    print(server.pid, flush=True)
    signal.pause()  # until killed: no finalizer will run
    """
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_killed_test_process_takes_its_servers_with_it(tmp_path: Path) -> None:
    db_servers.require_binary("redis-server", "redis-server")
    script = tmp_path / "session.py"
    script.write_text(SESSION.format(root=str(ROOT), directory=str(tmp_path)))
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    server_pid = None
    try:
        assert process.stdout is not None
        server_pid = int(process.stdout.readline())
        time.sleep(0.2)
        assert alive(server_pid)  # the thread that started it is gone; the server is not
        process.send_signal(signal.SIGKILL)
        process.wait(5)
        wait_for(
            lambda: not alive(server_pid), 5, message=f"redis-server {server_pid} outlived its test process"
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        if server_pid is not None and alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)
