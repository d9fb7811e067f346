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

    def program_account(self, name: str) -> Account:
        return self.account  # one user runs every program here (as with runtime_user)

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


# -- #29: a template's build shared by the services with the same dependencies -------------------
PYPROJECT = """[project]
name = "{name}"
description = "The {name} service"
version = "0.1.0"
dependencies = [{deps}]
"""


def shared_service(runner, name: str, deps: str = '"fastapi>=0.115"') -> LocalRun:
    folder = runner.service_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(PYPROJECT.format(name=name, deps=deps))
    output = runner.build_dir(name)
    step = ("sh", "-c", f"id -u > {output}/uid && echo built >> {output}/count && cp pyproject.toml {output}/")
    return LocalRun(("pyproject.toml",), (step,), ("true",), shared="python-dependencies")


def test_services_with_the_same_dependencies_share_one_build(runner):
    assert runner.build_service("loyalty", shared_service(runner, "loyalty")) is True
    assert runner.build_service("rewards", shared_service(runner, "rewards")) is True
    loyalty, rewards = runner.build_dir("loyalty"), runner.build_dir("rewards")
    assert loyalty.is_symlink() and rewards.is_symlink()
    assert loyalty.resolve() == rewards.resolve()
    assert (rewards / "count").read_text() == "built\n"  # built once, for loyalty
    assert any("rewards uses the build of the services with the same python dependencies" in message
               for message in runner.messages)
    shared = loyalty.resolve()
    assert int((shared / "uid").read_text()) == programs_uid()  # built as the programs' user
    # the builder's; read by every service that shares it (their dependencies), changed by none
    assert os.stat(shared).st_uid == programs_uid() and os.stat(shared).st_mode & 0o777 == 0o755
    assert os.lstat(loyalty).st_uid == 0 and os.stat(shared.parent).st_uid == 0  # the links are root's
    assert runner.build_service("rewards", shared_service(runner, "rewards")) is False


def test_a_change_to_one_services_dependencies_leaves_the_others_build_alone(runner):
    runner.build_service("loyalty", shared_service(runner, "loyalty"))
    runner.build_service("rewards", shared_service(runner, "rewards"))
    before = runner.build_dir("loyalty").resolve()
    assert runner.build_service("rewards", shared_service(runner, "rewards", '"fastapi>=0.115", "redis>=5"')) is True
    after = runner.build_dir("rewards").resolve()
    assert after != before and (after / "count").read_text() == "built\n"
    assert '"redis>=5"' in (after / "pyproject.toml").read_text()
    assert runner.build_dir("loyalty").resolve() == before  # loyalty's build is untouched
    assert (before / "count").read_text() == "built\n" and "redis" not in (before / "pyproject.toml").read_text()
    assert runner.build_service("loyalty", shared_service(runner, "loyalty")) is False
    # once nothing links to a build any more, the next new build removes it
    runner.build_service("loyalty", shared_service(runner, "loyalty", '"httpx>=0.27"'))
    runner.build_service("wallet", shared_service(runner, "wallet", '"pyjwt>=2.8"'))
    assert not before.exists() and after.exists()


def test_a_shared_build_that_failed_is_built_again(runner):
    """A failed build leaves no mark of being done: the next service with the same key builds it."""
    def run_for(name: str) -> LocalRun:
        run = shared_service(runner, name)
        output = runner.build_dir(name)
        return LocalRun(run.inputs, (("sh", "-c", f"cat go && echo built >> {output}/count"),), run.command,
                        shared=run.shared)

    with pytest.raises(EcoctlError):
        runner.build_service("loyalty", run_for("loyalty"))  # no `go` file: the step fails
    (runner.service_dir("rewards").mkdir(parents=True))
    (runner.service_dir("rewards") / "go").write_text("go\n")
    assert runner.build_service("rewards", run_for("rewards")) is True
    assert (runner.build_dir("rewards") / "count").read_text() == "built\n"
