"""Least privilege of the local runtime, checked from a second, unprivileged Linux user on the
same host (created here with useradd, removed at the end), and recovery after supervisord is
killed. Real supervisord, PostgreSQL, Redis, Prometheus and the portfolio service."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ecoctl.components import PROMETHEUS, REDIS, SIGNIN
from ecoctl.errors import EcoctlError
from ecoctl.runtimes.local import LocalRuntime
from ecoctl.runtimes.local.health import redis_ping
from ecoctl.runtimes.local.postgres import SERVICE_USER
from ecoctl.runtimes.local.supervisor import Supervisor
from ecoctl.workspace import Workspace
from tests.helpers import USERS_GROUP
from tests.integration.test_local_runtime import new_ecosystem, provision_database, running

PROBE_USER = "ecoctl-probe"
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = [
    pytest.mark.xdist_group(USERS_GROUP),  # useradd/userdel: one worker (tests/conftest.py)
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates a second Linux user"),
    pytest.mark.skipif(shutil.which("useradd") is None or shutil.which("runuser") is None,
                       reason="useradd/runuser not available"),
    pytest.mark.skipif(shutil.which("redis-server") is None or shutil.which("prometheus") is None,
                       reason="redis-server/prometheus not on PATH (apt-get install redis-server prometheus)"),
    pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason=f"{SYSTEM_PYTHON} missing"),
]


@pytest.fixture(scope="module")
def probe_user():
    """A second local user, as a colleague on a shared host would be."""
    existed = subprocess.run(["id", PROBE_USER], capture_output=True).returncode == 0
    if not existed:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", PROBE_USER], check=True)
    try:
        yield pwd.getpwnam(PROBE_USER)
    finally:
        if not existed:
            subprocess.run(["userdel", PROBE_USER], check=False)


def as_probe(code: str) -> str:
    """Run Python CODE as the second user; its stdout (stderr on failure, for the message)."""
    result = subprocess.run(["runuser", "-u", PROBE_USER, "--", SYSTEM_PYTHON, "-c", code],
                            capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def stack(probe_user):
    """The whole local stack, started by root, in a folder only root can enter."""
    root = Path(tempfile.mkdtemp(prefix="ecoctl-hard-"))  # mode 0700
    workspace = new_ecosystem(root / "demo")
    runtime = LocalRuntime(workspace)
    try:
        runtime.start_postgres()
        provision_database(runtime, "portfolio")
        runtime = LocalRuntime(Workspace(workspace.root))
        runtime.start_core()
        runtime.start_services([])
        runtime.start_monitoring()
        assert runtime.wait_healthy(["redis", "prometheus", "portfolio"], timeout=120) == \
            {"redis": "healthy", "prometheus": "healthy", "portfolio": "healthy"}
        yield runtime
    finally:
        runtime.stop(remove_volumes=True)
        shutil.rmtree(root, ignore_errors=True)


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def descendants(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry.name))
            except (OSError, ValueError):
                continue
    return children + [grandchild for child in children for grandchild in descendants(child)]


# -- who runs what --------------------------------------------------------------------------------
def test_no_program_runs_as_root_only_supervisord(stack):
    """supervisord stays root: it must switch each program to its own user (setuid in the child;
    see test_program_users) and it exposes nothing to other users (0700 socket folder, 0600 config)."""
    builder_uid = pwd.getpwnam(SERVICE_USER).pw_uid
    daemon = stack.supervisor.pid()
    assert uid_of(daemon) == 0
    programs = {name: info["pid"] for name, info in stack.supervisor.all_info().items()
                if info["statename"] in ("RUNNING", "STARTING")}
    assert {"postgres", "redis", "prometheus", "portfolio"} <= set(programs)
    under = descendants(daemon)
    assert set(programs.values()) <= set(under)
    for name, pid in programs.items():  # a program and all its children: its own user's
        uid = pwd.getpwnam(stack.program_account(name).name).pw_uid
        owners = {child: uid_of(child) for child in [pid, *descendants(pid)] if running(child)}
        assert set(owners.values()) == {uid} and uid not in (0, builder_uid), (name, owners)


# -- Redis ----------------------------------------------------------------------------------------
def test_redis_refuses_commands_without_the_password(stack):
    port = stack.ecosystem.core.redis.port
    answer = as_probe(
        "import socket\n"
        f"s = socket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
        "s.sendall(b'*3\\r\\n$6\\r\\nCONFIG\\r\\n$3\\r\\nGET\\r\\n$3\\r\\ndir\\r\\n' + b'*1\\r\\n$4\\r\\nPING\\r\\n')\n"
        "import time; time.sleep(0.3)\n"
        "print(s.recv(4096).decode())\n")
    assert answer.startswith("-NOAUTH") and "+PONG" not in answer, answer
    password = stack.workspace.env.get("REDIS_PASSWORD")
    assert password and redis_ping(port, password) and not redis_ping(port, password + "x")
    # the password is in no process's argv, and its file is readable by redis's user only
    pid = stack.supervisor.info("redis")["pid"]
    assert password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    config = stack.place(REDIS).config
    info = config.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == pwd.getpwnam(stack.program_account("redis").name).pw_uid
    # services get it through the contract
    environment = stack.service_environment("portfolio")
    assert environment["REDIS_PASSWORD"] == password
    assert environment["REDIS_URL"] == f"redis://:{password}@127.0.0.1:{port}/0"


# -- Prometheus -----------------------------------------------------------------------------------
def test_prometheus_lifecycle_endpoints_do_nothing(stack):
    from ecoctl.clients import prometheus

    url = stack.workspace.prometheus_url
    before = prometheus.reload_state(url)
    pid = stack.supervisor.info("prometheus")["pid"]
    codes = as_probe(
        "import urllib.request, urllib.error\n"
        "for path in ('/-/reload', '/-/quit'):\n"
        f"    request = urllib.request.Request('{url}' + path, data=b'', method='POST')\n"
        "    try:\n"
        "        print(urllib.request.urlopen(request, timeout=5).status)\n"
        "    except urllib.error.HTTPError as exc:\n"
        "        print(exc.code)\n")
    assert all(code != "200" for code in codes.split()), codes
    time.sleep(1)  # give a (wrongly) accepted quit or reload the time to happen
    assert stack.supervisor.info("prometheus")["pid"] == pid and running(pid)
    assert stack.probe("prometheus") == "healthy"
    assert prometheus.reload_state(url) == before


def test_prometheus_reloads_by_sighup_and_reports_a_failed_reload(stack):
    from ecoctl.clients import prometheus

    url = stack.workspace.prometheus_url
    config = stack.workspace.root / PROMETHEUS.local.config_from
    original = config.read_text()
    pid = stack.supervisor.info("prometheus")["pid"]
    before = prometheus.reload_state(url)
    try:
        config.write_text(original.replace("scrape_interval: 15s", "scrape_interval: 20s", 1))
        assert stack.reload_prometheus() is True
        after = prometheus.reload_state(url)
        assert after[1] and after[0] > before[0]
        assert "scrape_interval: 20s" in stack.place(PROMETHEUS).config.read_text()
        config.write_text(original + "\nthis is: [not valid\n")
        with pytest.raises(EcoctlError, match="last configuration reload failed") as caught:
            stack.reload_prometheus()
        assert "\n" not in str(caught.value)
    finally:
        config.write_text(original)
    assert stack.reload_prometheus() is True
    # what `ecoctl apply` does: the provider writes the job and reloads through the runtime
    from ecoctl.commands.reconcile import runtime_view
    from ecoctl.providers.prometheus import PrometheusProvider
    from tests.helpers import converge_providers

    converge_providers([PrometheusProvider(workspace := Workspace(stack.workspace.root), runtime=runtime_view(workspace))])
    deadline = time.monotonic() + 20  # the reload is checked at once; discovery lists targets within ~5 s
    while "portfolio" not in {target["labels"]["job"] for target in prometheus.active_targets(url)}:
        assert time.monotonic() < deadline, prometheus.active_targets(url)
        time.sleep(0.5)
    assert stack.supervisor.info("prometheus")["pid"] == pid  # reloaded, never restarted


# -- supervisord's socket and the secrets ---------------------------------------------------------
def test_the_second_user_cannot_open_the_supervisord_socket(stack):
    socket_file = stack.supervisor.socket
    assert stack.supervisor.answers()
    answer = as_probe(
        "import socket\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f"    s.connect({str(socket_file)!r}); print('connected')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n")
    assert answer == "PermissionError", answer


def test_no_file_holding_a_secret_is_readable_by_the_second_user(stack):
    workspace = stack.workspace
    secrets_ = [value for key, value in workspace.env.values.items()
                if value and len(value) >= 16 and ("PASSWORD" in key or "SECRET" in key)]
    assert workspace.env.get("REDIS_PASSWORD") in secrets_
    from ecoctl.local_auth import private_key_path

    holding = [workspace.root / ".env", private_key_path(workspace)]
    for folder in (workspace.state_dir, stack.program_home()):
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 1_000_000:
                data = path.read_bytes()
                if any(secret.encode() in data for secret in secrets_):
                    holding.append(path)
    assert stack.place(REDIS).config in holding and stack.supervisor.config_path in holding
    signin = stack.place(SIGNIN).config  # the development sign-in's: its signing key, session secret
    assert signin in holding and (signin.stat().st_mode & 0o777, signin.stat().st_uid) == \
        (0o600, pwd.getpwnam(stack.program_account(SIGNIN.name).name).pw_uid)
    readable = as_probe(
        "import os, sys\n"
        f"paths = {[str(path) for path in holding]!r}\n"
        "print([p for p in paths if os.access(p, os.R_OK)])\n")
    assert readable == "[]"


def test_a_socket_folder_owned_by_someone_else_is_refused(tmp_path, probe_user):
    deep = tmp_path / ("x" * 60) / ("y" * 60) / ".ecoctl"
    supervisor = Supervisor(deep, "ecoctl-test")
    foreign = Path(tempfile.mkdtemp(prefix="ecoctl-"))
    try:
        os.chown(foreign, probe_user.pw_uid, probe_user.pw_gid)
        supervisor.folder.mkdir(parents=True)
        supervisor.socket_record.write_text(f"{foreign}\n")
        with pytest.raises(EcoctlError, match=f"owned by {PROBE_USER}.*refusing") as caught:
            supervisor.prepare_socket()
        assert "\n" not in str(caught.value)
        with pytest.raises(EcoctlError, match="refusing"):
            supervisor.answers()  # never talks to a server someone else may have put there
    finally:
        shutil.rmtree(foreign)
    # a pre-created supervisor/ folder of someone else's: refused too
    other = Supervisor(tmp_path / "short" / ".ecoctl", "ecoctl-test")
    other.folder.mkdir(parents=True)
    os.chown(other.folder, probe_user.pw_uid, probe_user.pw_gid)
    with pytest.raises(EcoctlError, match="refusing to use it"):
        other.write_config([])


# -- recovery ----------------------------------------------------------------------------------
def test_after_supervisord_is_killed_status_tells_the_truth_and_up_converges(stack):
    before = {name: info["pid"] for name, info in stack.supervisor.all_info().items()
              if info["statename"] in ("RUNNING", "STARTING")}
    leftovers_before = [pid for pid in descendants(stack.supervisor.pid())]
    os.kill(stack.supervisor.pid(), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while stack.supervisor.answers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(running(pid) for pid in before.values())
    runtime = LocalRuntime(Workspace(stack.workspace.root))
    rows = {row.name: row for row in runtime.status()}
    for name in ("postgres", "redis", "prometheus", "portfolio"):
        assert rows[name].state == "running" and "not supervised" in rows[name].detail, rows[name]
    assert rows["redis"].health == "healthy"

    runtime.start_postgres()  # `up`: stops every leftover (redis included), then starts cleanly
    runtime.start_core()
    runtime.start_services([])
    runtime.start_monitoring()
    assert runtime.wait_healthy(["redis", "prometheus", "portfolio"], timeout=120) == \
        {"redis": "healthy", "prometheus": "healthy", "portfolio": "healthy"}
    assert not any(running(pid) for pid in leftovers_before)
    rows = {row.name: row for row in runtime.status()}
    assert all(rows[name].state == "running" and "not supervised" not in rows[name].detail
               for name in ("postgres", "redis", "prometheus", "portfolio"))
    assert runtime.leftovers() == {}


def test_a_leftover_beside_a_live_supervisord_is_shown_and_replaced(stack):
    """Redis started by hand from this ecosystem's config (as a crash before might leave it):
    `status` shows it as not supervised, `up` stops it and starts redis under supervision."""
    assert stack.supervisor.stop_program("redis")
    leftover = subprocess.Popen(["runuser", "-u", stack.program_account("redis").name, "--", shutil.which("redis-server"),
                                 str(stack.place(REDIS).config)], cwd="/", stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while stack.probe("redis") != "healthy" and time.monotonic() < deadline:
            time.sleep(0.1)
        row = {row.name: row for row in stack.status()}["redis"]
        assert row.state == "running" and "not supervised" in row.detail, row
        assert stack.start_core() is True
        leftover.wait(timeout=30)
        info = stack.supervisor.info("redis")
        assert info["statename"] == "RUNNING" and stack.probe("redis") == "healthy"
        assert {row.name: row for row in stack.status()}["redis"].detail == ""
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


def test_the_repository_stops_nothing_by_name():
    root = Path(__file__).resolve().parents[2]
    words = ("p" + "kill", "kill" + "all")
    files = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True).stdout.split()
    found = [name for name in files if (root / name).is_file()
             and any(word.encode() in (root / name).read_bytes() for word in words)]
    assert found == []


def test_runtime_user_names_who_the_programs_run_as(probe_user):
    """`runtime_user:` in ecosystem.yaml: every program runs as that one user instead of its own."""
    from ecoctl.errors import UsageError

    root = Path(tempfile.mkdtemp(prefix="ecoctl-user-"))
    workspace = new_ecosystem(root / "demo")
    workspace.ecosystem_file.update(lambda doc: doc.__setitem__("runtime_user", PROBE_USER))
    runtime = LocalRuntime(Workspace(workspace.root))
    try:
        users = {program.name: program.user for program in runtime.programs()}
        assert set(users.values()) == {PROBE_USER}, users
        assert runtime.postgres_server().server_argv()[:3] == ["runuser", "-u", PROBE_USER]
        runtime.start_core()
        pid = runtime.supervisor.info("redis")["pid"]
        assert uid_of(pid) == probe_user.pw_uid
        assert runtime.place(REDIS).config.stat().st_uid == probe_user.pw_uid
        assert runtime.probe("redis") == "healthy"
    finally:
        runtime.stop(remove_volumes=True)
        shutil.rmtree(root, ignore_errors=True)
    for bad, message in (("root", "cannot be root"), ("no-such-user-x", "does not exist")):
        other = Path(tempfile.mkdtemp(prefix="ecoctl-user-"))
        try:
            ws = new_ecosystem(other / "demo")
            with pytest.raises((UsageError, EcoctlError), match=message) as caught:
                ws.ecosystem_file.update(lambda doc: doc.__setitem__("runtime_user", bad))
                LocalRuntime(Workspace(ws.root)).programs()
            assert "\n" not in str(caught.value)
        finally:
            shutil.rmtree(other, ignore_errors=True)
