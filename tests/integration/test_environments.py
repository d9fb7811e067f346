"""Service environments of the local runtime: built by uv (a dependency of ecoctl) with its shared
cache; pip only when uv cannot run, and `status` says which one builds them. Real installs."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from ecoctl.errors import EcoctlError
from ecoctl.runtimes.local import environments
from ecoctl.runtimes.local.environments import INSTALL_STAMP, Environments


class Installer(Environments):
    """The mixin with the few attributes of LocalRuntime it uses."""

    def __init__(self, root: Path):
        self.root = root
        self.supervisor = SimpleNamespace(logs_dir=root / "logs")
        self.messages: list[str] = []
        self.progress = self.messages.append

    def service_dir(self, name: str) -> Path:
        return self.root / "services" / name

    def service_run_dir(self, name: str) -> Path:
        return self.service_dir(name)

    def venv_dir(self, name: str) -> Path:
        return self.root / "venvs" / name

    @property
    def account(self):
        import sys

        return SimpleNamespace(name=None, service_python=lambda: sys.executable)

    def program_account(self, name: str):
        return self.account  # no user switch: every program is the caller (LocalRuntime.program_account)


@pytest.fixture(autouse=True)
def fresh_choice():
    environments.uv_binary.cache_clear()
    yield
    environments.uv_binary.cache_clear()


def service(root: Path, name: str, requirements: str = "") -> Installer:
    folder = root / "services" / name
    folder.mkdir(parents=True)
    (folder / "requirements.txt").write_text(requirements)
    return Installer(root)


def test_uv_builds_the_environment_once(tmp_path):
    path, why = environments.uv_binary()
    assert path and why == "" and environments.installer_note() == "environment: uv"
    installer = service(tmp_path, "loyalty")
    assert installer.ensure_venv("loyalty") is True
    python = tmp_path / "venvs/loyalty/bin/python"
    assert subprocess.run([str(python), "-c", "import uvicorn"]).returncode == 0
    assert not (tmp_path / "venvs/loyalty/bin/pip").exists()  # uv venv: no pip bootstrapped
    log = (tmp_path / "logs/loyalty-install.log").read_text()
    assert f"$ {path} venv" in log and f"$ {path} pip install" in log
    assert any("(uv)" in message for message in installer.messages)
    assert installer.ensure_venv("loyalty") is False  # same dependency files: nothing to do
    (tmp_path / "services/loyalty/requirements.txt").write_text("# changed\n")
    assert installer.ensure_venv("loyalty") is True
    assert (tmp_path / "venvs" / f".loyalty{INSTALL_STAMP}").is_file()  # beside the venv: the install writes in it


def test_a_failing_uv_install_is_one_line_naming_the_log(tmp_path):
    installer = service(tmp_path, "broken", "this-package-does-not-exist-ecoctl==0.0.1\n")
    with pytest.raises(EcoctlError) as caught:
        installer.ensure_venv("broken")
    message = str(caught.value)
    assert "installing broken failed" in message and "broken-install.log" in message and "\n" not in message


def test_pip_when_uv_cannot_run(tmp_path, monkeypatch):
    fake = tmp_path / "uv"
    fake.write_text("not a program")
    fake.chmod(0o644)  # present but not executable
    import uv

    monkeypatch.setattr(uv, "find_uv_bin", lambda: str(fake))
    path, why = environments.uv_binary()
    assert path is None and str(fake) in why and "cannot run" in why
    assert environments.installer_note().startswith("environment: pip (uv cannot run:")


def test_ecoctl_installer_pip_forces_pip(monkeypatch):
    monkeypatch.setenv("ECOCTL_INSTALLER", "pip")
    assert environments.uv_binary() == (None, "ECOCTL_INSTALLER=pip")
    assert environments.installer_note() == "environment: pip (ECOCTL_INSTALLER=pip)"
