"""Attacks by a second local user, mallory (created here with useradd, removed at the end by uid):
issue 27 items 12 (`.env` symlink chains) and 2 (an ecosystem folder another user may write).
Every test that needs the account is in this file, so they run on one pytest-xdist worker."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from ecoctl.commands.init import init_ecosystem
from tests.helpers import USERS_GROUP, assert_refused, run_ecoctl

pytestmark = [
    pytest.mark.xdist_group(USERS_GROUP),  # useradd/userdel: one worker (tests/conftest.py)
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates a second Linux user"),
    pytest.mark.skipif(shutil.which("useradd") is None or shutil.which("runuser") is None,
                       reason="useradd/runuser not available"),
]


@pytest.fixture(scope="module")
def mallory():
    name = f"ecoctl-m{secrets.token_hex(4)}"  # unique: never an account that existed before
    subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                    name], check=True)
    account = pwd.getpwnam(name)
    try:
        yield account
    finally:
        try:
            still = pwd.getpwuid(account.pw_uid).pw_name
        except KeyError:
            still = None
        if still == name:  # the account with that uid is still the one made here
            subprocess.run(["userdel", name], check=False)


def as_user(account, *argv: str) -> None:
    done = subprocess.run(["runuser", "-u", account.pw_name, "--", *argv], capture_output=True, text=True,
                          timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr


@pytest.fixture
def public():
    """A folder every user may enter (pytest's own are root's alone), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="ecoctl-sec-"))
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def shared(public):
    """A folder every user may write, like /tmp (sticky)."""
    folder = public / "shared"
    folder.mkdir()
    os.chmod(folder, 0o1777)
    return folder


# --- item 12: .env symlink chains ------------------------------------------------------------

def test_an_env_link_through_another_users_link_is_refused(tmp_path, mallory, shared):
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    victim = tmp_path / "victim.conf"
    victim.write_text("root's own settings\n")
    victim.chmod(0o644)
    saved = (root / ".env").read_text()
    as_user(mallory, "ln", "-s", str(victim), str(shared / "eco.env"))  # mallory's link, in a shared folder
    (root / ".env").unlink()
    (root / ".env").symlink_to(shared / "eco.env")  # root's own link, to what was meant to be a shared file
    for command in (["add-service", "edge", "--no-apply"], ["plan", "--only", "files"], ["env", "portfolio"]):
        assert_refused(run_ecoctl(*command, cwd=root), 2, "belongs to another user", str(shared / "eco.env"))
    assert victim.read_text() == "root's own settings\n" and victim.stat().st_mode & 0o777 == 0o644
    assert "POSTGRES_PASSWORD" not in victim.read_text() and saved


def test_an_env_link_of_your_own_chain_is_still_followed(tmp_path):
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    vault = tmp_path / "vault"
    vault.mkdir()
    os.replace(root / ".env", vault / "eco.env")
    (tmp_path / "current").symlink_to(vault)  # a chain: .env -> current/eco.env, current -> vault
    (root / ".env").symlink_to(tmp_path / "current" / "eco.env")
    result = run_ecoctl("add-service", "edge", "--no-apply", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "EDGE_DB_PASSWORD=" in (vault / "eco.env").read_text() and (root / ".env").is_symlink()


def test_a_dangling_env_link_creates_no_folder(tmp_path):
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    (root / ".env").unlink()
    far = tmp_path / "nowhere" / "deeper"
    (root / ".env").symlink_to(far / ".env")
    for command in (["plan", "--only", "files"], ["add-service", "edge", "--no-apply"]):
        assert_refused(run_ecoctl(*command, cwd=root), 2, "folder does not exist")
    assert not (tmp_path / "nowhere").exists()


# --- item 2: an ecosystem folder another user may write --------------------------------------

def owned_by(account, path, mode: int):
    path.mkdir()
    os.chown(path, account.pw_uid, account.pw_gid)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("case", ["mallorys-open-folder", "mallorys-closed-folder", "open-parent", "open-folder",
                                  "sticky-folder"])
def test_init_refuses_a_folder_another_user_may_write(public, mallory, case):
    if case == "mallorys-open-folder":
        target = owned_by(mallory, public / "m", 0o777) / "eco"
    elif case == "mallorys-closed-folder":  # hers: she may rename eco away and put her own in its place
        target = owned_by(mallory, public / "m", 0o755) / "eco"
    elif case == "open-parent":
        parent = public / "open"
        parent.mkdir()
        os.chmod(parent, 0o777)
        target = parent / "eco"
    else:
        target = public / "eco"
        target.mkdir()
        os.chmod(target, 0o1777 if case == "sticky-folder" else 0o777)
    existed = set(target.iterdir()) if target.exists() else None
    line = assert_refused(run_ecoctl("init", str(target), "--runtime", "local", "--without", "web"), 2, "another user", "chmod go-w")
    assert len(line) < 400
    assert (set(target.iterdir()) if target.exists() else None) == existed


def test_init_accepts_a_sticky_shared_parent_like_tmp(shared):
    result = run_ecoctl("init", str(shared / "eco"), "--runtime", "local", "--without", "web")
    assert result.returncode == 0, result.stderr
    assert (shared / "eco" / "ecosystem.yaml").is_file()


def test_a_folder_opened_to_others_after_init_is_refused_by_commands_that_change_it(public):
    root = public / "eco"
    assert run_ecoctl("init", str(root), "--runtime", "local", "--without", "web").returncode == 0
    os.chmod(root, 0o777)
    before = (root / "ecosystem.yaml").read_text()
    assert_refused(run_ecoctl("add-service", "edge", "--no-apply", cwd=root), 2, "another user")
    assert (root / "ecosystem.yaml").read_text() == before


# --- item 4: a service's copy under /var/lib/ecoctl/data ------------------------------------

class NoBuild:
    """A template's `run.local` with nothing to build: only the copy of the service is made."""
    inputs = ("**/*",)
    build = ()
    shared = None


def test_a_services_copy_keeps_its_modes_in_a_private_folder(tmp_path, mallory):
    from ecoctl.runtimes.local import LocalRuntime
    from ecoctl.workspace import Workspace

    root = tmp_path / "eco"  # under pytest's 0700 folder: the `ecoctl` user runs a copy
    init_ecosystem(root, runtime="local", without=("web",))
    service = root / "services" / "portfolio"
    (service / ".env.local").write_text("API_KEY=only-for-root\n")
    (service / ".env.local").chmod(0o600)
    (service / "run.sh").write_text("#!/bin/sh\n")
    (service / "run.sh").chmod(0o755)
    runtime = LocalRuntime(Workspace(root))
    try:
        assert runtime.build_service("portfolio", NoBuild())
        copy = runtime.service_run_dir("portfolio")
        assert str(copy).startswith("/var/lib/ecoctl/data/"), copy
        assert (copy / ".env.local").stat().st_mode & 0o777 == 0o600
        assert (copy / "run.sh").stat().st_mode & 0o777 == 0o755
        assert (copy / "pyproject.toml").stat().st_mode & 0o777 == 0o644
        # only root and the service's own user enter the copy (item 3: not another service either);
        # its parent is traversed by every service's user, listed by none
        reader = runtime.program_account("portfolio")
        assert copy.stat().st_mode & 0o027 == 0 and copy.stat().st_gid == reader.ids()[1], oct(copy.stat().st_mode)
        assert copy.parent.stat().st_mode & 0o066 == 0, oct(copy.parent.stat().st_mode)
        peek = subprocess.run(["runuser", "-u", mallory.pw_name, "--", "cat", str(copy / ".env.local")],
                              capture_output=True, text=True)
        assert peek.returncode != 0 and "only-for-root" not in peek.stdout
        listed = subprocess.run(["runuser", "-u", mallory.pw_name, "--", "cat", str(copy / "pyproject.toml")],
                                capture_output=True, text=True)
        assert listed.returncode != 0, "another user reads the service's code at its predictable path"
        assert reader.succeeds(["cat", str(copy / "pyproject.toml")])  # the service's user still can
    finally:
        runtime.stop(remove_volumes=True)
