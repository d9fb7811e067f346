"""Issue 27 item 3: one Unix user per program. A real local stack (postgres, redis, the sign-in and two
services, started by root with `ecoctl up`), checked from inside one service's uid: it cannot read
another program's environment, PostgreSQL's data, redis.conf, nor write another service's code or
venv. `up` twice makes no new users; `down` then `up` works; `down --volumes` removes the users
ecoctl made (and only those). Every file that creates Linux accounts runs on one worker."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from ecoctl.components import REDIS
from ecoctl.runtimes.local import LocalRuntime, program_users
from ecoctl.runtimes.local.postgres import SERVICE_USER
from ecoctl.workspace import Workspace
from tests.helpers import USERS_GROUP, run_ecoctl
from tests.integration.test_local_runtime import free_port, new_ecosystem

SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = [
    pytest.mark.xdist_group(USERS_GROUP),  # useradd/userdel: one worker (tests/conftest.py)
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: each program gets its own Linux user"),
    pytest.mark.skipif(shutil.which("useradd") is None or shutil.which("runuser") is None,
                       reason="useradd/runuser not available"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not on PATH"),
    pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason=f"{SYSTEM_PYTHON} missing"),
]


def up(root: Path) -> None:
    done = run_ecoctl("--dir", str(root), "up", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def stack():
    """Two services with postgres, redis and the sign-in, in a folder only root can enter."""
    folder = Path(tempfile.mkdtemp(prefix="ecoctl-users-"))  # 0700: the programs run from copies
    workspace = new_ecosystem(folder / "demo")
    port = free_port()

    def two_services(doc):
        doc["core"]["monitoring"]["enabled"] = False
        doc["services"]["loyalty"] = {"template": "python-fastapi", "port": port}

    workspace.ecosystem_file.update(two_services)
    ecosystem = program_users.ecosystem_id(workspace.root)
    try:
        up(workspace.root)
        yield LocalRuntime(Workspace(workspace.root))
    finally:
        run_ecoctl("--dir", str(workspace.root), "down", "--volumes", "--yes", timeout=300)
        program_users.remove(ecosystem)  # whatever a failed run left
        shutil.rmtree(folder, ignore_errors=True)


def pids(runtime) -> dict[str, int]:
    return {name: info["pid"] for name, info in runtime.supervisor.all_info().items()
            if info["statename"] in ("RUNNING", "STARTING")}


def uid_of(pid: int) -> int:
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:"))
    return int(line.split()[1])


def as_user(user: str, code: str) -> dict:
    done = subprocess.run(["runuser", "-u", user, "--", SYSTEM_PYTHON, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


TRY = """
import json, os, sys
def attempt(action):
    try:
        action()
        return "allowed"
    except PermissionError:
        return "denied"
    except OSError as exc:
        return f"error {exc.errno}"
results = {}
"""


def test_each_program_runs_as_its_own_user(stack):
    running = pids(stack)
    assert {"postgres", "redis", "signin", "portfolio", "loyalty"} <= set(running), running
    owners = {name: uid_of(pid) for name, pid in running.items()}
    assert len(set(owners.values())) == len(owners), owners  # no two programs share a uid
    builder = pwd.getpwnam(SERVICE_USER).pw_uid
    assert 0 not in owners.values() and builder not in owners.values(), owners
    made = program_users.made_for(program_users.ecosystem_id(stack.workspace.root))
    assert {pwd.getpwuid(uid).pw_name for uid in owners.values()} <= set(made)
    for uid in owners.values():
        entry = pwd.getpwuid(uid)
        assert entry.pw_shell == "/usr/sbin/nologin" and len(entry.pw_name) <= 32
    # the file that holds every program's environment is root's alone
    config = stack.supervisor.config_path.stat()
    assert config.st_uid == 0 and stat.S_IMODE(config.st_mode) == 0o600


def test_a_service_reaches_nothing_of_another_program(stack):
    running = pids(stack)
    portfolio = pwd.getpwuid(uid_of(running["portfolio"])).pw_name
    postgres_data = stack.postgres_data_dir()[0]
    redis_conf = stack.place(REDIS).config
    loyalty_code = stack.service_run_dir("loyalty")
    loyalty_venv = stack.venv_dir("loyalty")  # a Python service without a template build
    loyalty_build = Path(os.path.realpath(stack.build_dir("loyalty")))  # a shared build: its dependencies
    portfolio_code = stack.service_run_dir("portfolio")
    assert postgres_data.is_dir() and redis_conf.is_file() and loyalty_code.is_dir()
    code = TRY + f"""
results["environ"] = attempt(lambda: open("/proc/{running['loyalty']}/environ", "rb").read())
results["postgres environ"] = attempt(lambda: open("/proc/{running['postgres']}/environ", "rb").read())
results["redis environ"] = attempt(lambda: open("/proc/{running['redis']}/environ", "rb").read())
results["own environ"] = attempt(lambda: open("/proc/{running['portfolio']}/environ", "rb").read())
results["postgres data"] = attempt(lambda: os.listdir({str(postgres_data)!r}))
results["postgres conf"] = attempt(lambda: open({str(postgres_data / 'postgresql.conf')!r}).read())
results["redis.conf"] = attempt(lambda: open({str(redis_conf)!r}).read())
results["loyalty code"] = attempt(lambda: os.listdir({str(loyalty_code)!r}))
results["write loyalty code"] = attempt(lambda: open({str(loyalty_code / 'evil.py')!r}, "w").write("x"))
results["write loyalty build"] = attempt(lambda: open({str(loyalty_build / 'evil.py')!r}, "w").write("x"))
results["write own code"] = attempt(lambda: open({str(portfolio_code / 'evil.py')!r}, "w").write("x"))
results["read own code"] = attempt(lambda: os.listdir({str(portfolio_code)!r}))
print(json.dumps(results))
"""
    results = as_user(portfolio, code)
    assert results == {
        "environ": "denied", "postgres environ": "denied", "redis environ": "denied", "own environ": "allowed",
        "postgres data": "denied", "postgres conf": "denied", "redis.conf": "denied",
        "loyalty code": "denied", "write loyalty code": "denied", "write loyalty build": "denied",
        "write own code": "denied", "read own code": "allowed"}, results
    # what loyalty runs (its venv or its build) is the builder's: loyalty reads it and cannot change it
    loyalty = pwd.getpwuid(uid_of(running["loyalty"])).pw_name
    output = loyalty_venv if loyalty_venv.is_dir() else loyalty_build
    own = as_user(loyalty, TRY + f"""
results["read"] = attempt(lambda: os.listdir({str(output)!r}))
results["write"] = attempt(lambda: open({str(output / 'evil.py')!r}, "w").write("x"))
print(json.dumps(results))
""")
    assert own == {"read": "allowed", "write": "denied"}, own


def test_up_again_makes_no_new_users_and_down_then_up_works(stack):
    ecosystem = program_users.ecosystem_id(stack.workspace.root)
    before = program_users.made_for(ecosystem)
    owners = {name: uid_of(pid) for name, pid in pids(stack).items()}
    up(stack.workspace.root)
    assert program_users.made_for(ecosystem) == before
    done = run_ecoctl("--dir", str(stack.workspace.root), "down", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert program_users.made_for(ecosystem) == before  # data and users are kept
    up(stack.workspace.root)
    runtime = LocalRuntime(Workspace(stack.workspace.root))
    assert runtime.wait_healthy(["portfolio", "loyalty", "redis"], timeout=120) == \
        {"portfolio": "healthy", "loyalty": "healthy", "redis": "healthy"}
    assert {name: uid_of(pid) for name, pid in pids(runtime).items()} == owners
    assert program_users.made_for(ecosystem) == before


def test_a_user_of_the_same_name_not_made_by_ecoctl_is_refused():
    ecosystem = program_users.ecosystem_id(f"/nonexistent/{os.getpid()}")
    name = program_users.user_name(ecosystem, "portfolio")
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        with pytest.raises(Exception, match="not the one ecoctl made for portfolio"):
            program_users.ensure(ecosystem, "portfolio")
        assert program_users.made_for(ecosystem) == []
        assert program_users.remove(ecosystem) == []  # never removed: ecoctl did not make it
        assert pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False)


def test_remove_service_removes_its_user_alone(stack):
    ecosystem = program_users.ecosystem_id(stack.workspace.root)
    before = program_users.made_for(ecosystem)
    loyalty = program_users.user_name(ecosystem, "loyalty")
    assert loyalty in before
    done = run_ecoctl("--dir", str(stack.workspace.root), "remove-service", "loyalty", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert program_users.made_for(ecosystem) == [name for name in before if name != loyalty]


def test_down_with_volumes_removes_only_the_users_ecoctl_made(stack):
    ecosystem = program_users.ecosystem_id(stack.workspace.root)
    assert program_users.made_for(ecosystem)
    done = run_ecoctl("--dir", str(stack.workspace.root), "down", "--volumes", "--yes", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert program_users.made_for(ecosystem) == []
    assert pwd.getpwnam(SERVICE_USER)  # the builder stays: its caches serve every ecosystem


def test_the_users_of_an_ecosystem_whose_folder_is_gone_are_found(tmp_path):
    root = tmp_path / "gone"
    root.mkdir()
    (root / "ecosystem.yaml").write_text("name: gone\n")
    ecosystem = program_users.ecosystem_id(root)
    program_users.ensure(ecosystem, "portfolio", root)
    try:
        assert ecosystem not in program_users.vanished()
        shutil.rmtree(root)
        assert ecosystem in program_users.vanished()
        assert program_users.remove(ecosystem) == [program_users.user_name(ecosystem, "portfolio")]
        assert ecosystem not in program_users.vanished()
    finally:
        program_users.remove(ecosystem)


def test_a_venv_is_the_builders_and_read_by_its_service_alone(tmp_path):
    """A Python service without a template build: its venv is installed by the builder, run by the
    service's user, which cannot change it; another program's user cannot even enter it."""
    from ecoctl.commands.init import init_ecosystem

    root = tmp_path / "eco"  # under pytest's 0700 folder: the services run from copies
    init_ecosystem(root, runtime="local", without=("web",))
    runtime = LocalRuntime(Workspace(root))
    try:
        assert runtime.ensure_venv("portfolio") is True
        venv = runtime.venv_dir("portfolio")
        reader, other = runtime.program_account("portfolio"), runtime.program_account("redis")
        info = venv.stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == \
            (pwd.getpwnam(SERVICE_USER).pw_uid, reader.ids()[1], 0o750)
        python = str(venv / "bin" / "python")
        assert reader.succeeds([python, "-c", "import fastapi, uvicorn"])  # runs what it was given
        assert not reader.succeeds(["touch", str(venv / "evil")])
        assert not reader.succeeds(["touch", str(venv / "bin" / "evil")])
        assert not other.succeeds(["ls", str(venv)])
        assert runtime.ensure_venv("portfolio") is False  # unchanged: not installed again
    finally:
        runtime.stop(remove_volumes=True)
    assert program_users.made_for(program_users.ecosystem_id(root)) == []


def test_down_with_volumes_closes_the_gates_of_the_users_it_removes():
    """A venv kept in the ecosystem's folder (its programs' users reach it) is closed to its group
    when that group goes: a gid the system gives out again reaches nothing of it."""
    from ecoctl.commands.init import init_ecosystem

    folder = Path(tempfile.mkdtemp(prefix="ecoctl-users-open-"))
    os.chmod(folder, 0o755)  # every user may enter: the venvs stay under .ecoctl/
    try:
        root = folder / "eco"
        init_ecosystem(root, runtime="local", without=("web",))
        os.chmod(root / ".ecoctl", 0o755)
        runtime = LocalRuntime(Workspace(root))
        try:
            assert runtime.ensure_venv("portfolio") is True
            venv = runtime.venv_dir("portfolio")
            assert root in venv.parents and stat.S_IMODE(venv.stat().st_mode) == 0o750
        finally:
            runtime.stop(remove_volumes=True)
        assert stat.S_IMODE(venv.stat().st_mode) == 0o700
        assert program_users.made_for(program_users.ecosystem_id(root)) == []
    finally:
        shutil.rmtree(folder, ignore_errors=True)
