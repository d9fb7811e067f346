"""#27.1: a service's install and build steps (a setup.py, a template's `run.local.build`) run code;
run as root, ecoctl runs them as the programs' user, in that user's own copy of the folder, with a
minimal environment: never as root, never with root's HOME or variables."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from ecoctl.errors import EcoctlError
from ecoctl.runtimes.local.accounts import Account
from ecoctl.runtimes.local.builds import Builds
from ecoctl.runtimes.local.environments import Environments
from ecoctl.runtimes.local.postgres import SERVICE_USER, ensure_service_user
from ecoctl.template_run import LocalRun

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching to the programs' user needs root")

CANARY = "ECOCTL_ROOT_CANARY"
REPORT = """import os, pathlib
pathlib.Path("who.txt").write_text(f"{os.getuid()}|{os.environ.get('HOME')}|{os.environ.get('%s', '')}")
""" % CANARY


class Runner(Environments, Builds):
    """The two mixins with the attributes of LocalRuntime they use; the programs' user is real."""

    def __init__(self, root: Path):
        self.root = root
        self.supervisor = SimpleNamespace(logs_dir=root / "logs")
        self.messages: list[str] = []
        self.progress = self.messages.append
        self.account = Account(SERVICE_USER)

    def service_dir(self, name: str) -> Path:
        return self.root / "services" / name

    def service_run_dir(self, name: str) -> Path:
        return self.service_dir(name)

    def venv_dir(self, name: str) -> Path:
        return self.root / "run" / "venvs" / name

    def build_dir(self, name: str) -> Path:
        return self.root / "run" / "build" / name


@pytest.fixture
def runner(monkeypatch):
    monkeypatch.setenv(CANARY, "a secret of root's environment")
    ensure_service_user(SERVICE_USER)
    root = Path(tempfile.mkdtemp(prefix="ecoctl-builds-"))  # reachable by the programs' user (0711)
    os.chmod(root, 0o711)
    try:
        yield Runner(root)
    finally:
        shutil.rmtree(root)


def programs_uid() -> int:
    return pwd.getpwnam(SERVICE_USER).pw_uid


def test_a_python_service_installs_as_the_programs_user_with_a_minimal_environment(runner):
    folder = runner.service_dir("spy")
    folder.mkdir(parents=True)
    (folder / "setup.py").write_text(REPORT + "from setuptools import setup\nsetup(name='spy', version='1')\n")
    os.chmod(folder, 0o755)
    assert runner.ensure_venv("spy") is True
    uid, home, canary = (runner.build_tree("spy") / "who.txt").read_text().split("|")
    assert int(uid) == programs_uid()
    assert home != "/root" and not home.startswith("/root/") and canary == ""
    assert os.stat(runner.venv_dir("spy")).st_uid == programs_uid()
    assert sorted(path.name for path in folder.iterdir()) == ["setup.py"]  # its own folder untouched


def test_a_template_build_step_runs_as_the_programs_user(runner):
    folder = runner.service_dir("tool")
    folder.mkdir(parents=True)
    (folder / "main.sh").write_text("echo hello\n")
    output = runner.build_dir("tool")
    step = ("sh", "-c", f'id -u > {output}/uid && echo "$HOME|${CANARY}" > {output}/env && cat main.sh')
    assert runner.build_service("tool", LocalRun(("**/*",), (step,), ("sh", "main.sh"))) is True
    assert int((output / "uid").read_text()) == programs_uid()
    home, canary = (output / "env").read_text().strip().split("|")
    assert not home.startswith("/root") and canary == ""
    assert runner.build_service("tool", LocalRun(("**/*",), (step,), ("sh", "main.sh"))) is False


def test_a_build_cannot_write_into_roots_files(runner):
    """The step runs as the programs' user: the ecosystem's own files are out of its reach."""
    folder = runner.service_dir("greedy")
    folder.mkdir(parents=True)
    target = runner.root / "root-only.txt"
    target.write_text("root's\n")
    os.chmod(target, 0o644)
    step = ("sh", "-c", f"echo pwned > {target}")
    with pytest.raises(EcoctlError) as caught:
        runner.build_service("greedy", LocalRun(("**/*",), (step,), ("true",)))
    assert "building greedy failed" in str(caught.value)
    assert target.read_text() == "root's\n"
