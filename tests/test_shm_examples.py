"""The shared-memory examples, run for real."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

TABLE_OUTPUT = """\
Array
(
    [id] => 1
    [name] => Ja
    [age] => 18
)
Array
(
    [id] => 3
    [name] => To
    [age] => 19
)
"""


def run_example(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / "table.py"), *args], capture_output=True, text=True, timeout=30
    )


def test_table_example_truncates_like_the_original():
    result = run_example()
    assert result.returncode == 0, result.stderr
    assert result.stdout == TABLE_OUTPUT


def test_table_example_strict_column_refuses_long_values():
    result = run_example("--strict")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "column 'name' is 4 bytes; the column holds 2" in result.stderr
