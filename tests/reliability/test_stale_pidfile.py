"""A stale `supervisord.pid` (issue 27, item 13): after a crash or a reboot the pid in it may be any
other process's, and `down` sent SIGTERM to whatever had it (a `sleep` was killed). `down` now
signals only the supervisord of this ecosystem (its user, its argv naming our config, started
before the pidfile was written), removes the stale pidfile, and says "Nothing was running." only
when it stopped nothing (leftovers of a dead supervisord count)."""

import os
import subprocess
import sys
import time

import pytest

from ecoctl.runtimes.local import LocalRuntime
from ecoctl.workspace import Workspace
from tests.helpers import new_ecosystem_dir, run_ecoctl


@pytest.fixture
def root(tmp_path):
    return new_ecosystem_dir(tmp_path)


@pytest.fixture
def bystander():
    """Someone else's process (here: ours, so the test may see whether it was signalled)."""
    process = subprocess.Popen(["sleep", "300"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def pidfile_of(root):
    return LocalRuntime(Workspace(root)).supervisor.pidfile


@pytest.mark.parametrize("written", ["before-it-started", "after-it-started"])
def test_down_leaves_a_process_that_took_a_stale_pid_alone(root, bystander, written):
    pidfile = pidfile_of(root)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{bystander.pid}\n")
    if written == "before-it-started":  # a reboot: the pidfile is older than every process
        old = time.time() - 3600
        os.utime(pidfile, (old, old))
    result = run_ecoctl("down", cwd=root)
    assert result.returncode == 0, result.stderr
    time.sleep(0.2)
    assert bystander.poll() is None, "down signalled a process that is not its supervisord"
    assert "Nothing was running." in result.stdout
    assert not pidfile.exists(), "the stale pidfile stays"


def test_stopping_leftovers_is_not_nothing(root, tmp_path):
    """A program left running by a supervisord that died (here: a process with exactly the argv of
    the portfolio program, whose `python -m uvicorn` is a stand-in that waits) is stopped by
    `down`, which then says it stopped the stack."""
    program = next(p for p in LocalRuntime(Workspace(root)).programs() if p.name == "portfolio")
    fake = tmp_path / "fake"
    (fake / "uvicorn").mkdir(parents=True)
    (fake / "uvicorn" / "__init__.py").write_text("")
    (fake / "uvicorn" / "__main__.py").write_text("import time\ntime.sleep(300)\n")
    leftover = subprocess.Popen(program.argv, executable=sys.executable, cwd=tmp_path,
                                env={**os.environ, "PYTHONPATH": str(fake)})
    try:
        deadline = time.monotonic() + 10
        while LocalRuntime(Workspace(root)).leftovers() == {} and time.monotonic() < deadline:
            time.sleep(0.1)
        result = run_ecoctl("down", cwd=root)
        assert result.returncode == 0, result.stderr
        assert leftover.wait(timeout=30) is not None
        assert "Nothing was running." not in result.stdout and "Stack stopped." in result.stdout, result.stdout
    finally:
        leftover.kill()
        leftover.wait()
