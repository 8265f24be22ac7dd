"""Programs written for pybreaker and nodus run unchanged after the import swap."""

import pathlib
import subprocess
import sys

import pytest

PROGRAMS = pathlib.Path(__file__).parent / "programs"

# The swap: `import pybreaker` / `import nodus_circuit_breaker` now find breakerbox.
SWAP = (
    "import sys, runpy, breakerbox, breakerbox.nodus; "
    "sys.modules['pybreaker'] = breakerbox; "
    "sys.modules['nodus_circuit_breaker'] = breakerbox.nodus; "
    "runpy.run_path(sys.argv[1], run_name='__main__')"
)


@pytest.mark.parametrize("program", ["pybreaker_program.py", "nodus_program.py"])
def test_program_runs_unchanged(program):
    out = subprocess.run([sys.executable, "-c", SWAP, str(PROGRAMS / program)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(": ok")
