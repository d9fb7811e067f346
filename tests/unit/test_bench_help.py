"""Every bench script answers --help with its usage (and starts nothing): exit 0, the usage names
the script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("script", sorted(path.name for path in BENCH.glob("*.py")))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_bench_script_answers_help(script, flag):
    done = subprocess.run([sys.executable, str(BENCH / script), flag], capture_output=True, text=True,
                          timeout=120, cwd=BENCH.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert script in done.stdout and "Traceback" not in done.stderr, done.stdout
