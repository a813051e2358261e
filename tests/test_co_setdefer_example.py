"""examples/co_setDefer.py: deferred receives overlap the two backends' latency."""

import re
import subprocess
import sys

from helpers import EXAMPLES, ROOT, free_port


def test_deferred_requests_take_one_delay_instead_of_two():
    port = free_port()
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "co_setDefer.py"), "--port", str(port), "--delay", "0.4"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    times = dict(
        re.findall(r"^(.+?): \['mysql: query', 'redis: query'\] in ([0-9.]+) s$", result.stdout, re.M)
    )
    assert float(times["one after the other"]) >= 0.8
    assert float(times["deferred"]) < 0.7
