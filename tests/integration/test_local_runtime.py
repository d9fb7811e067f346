"""The local runtime against real processes: supervisord, PostgreSQL, Prometheus, uvicorn services."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from ecoctl import contract
from ecoctl.components import PROMETHEUS, REDIS, SIGNIN
from ecoctl.errors import EcoctlError, UsageError
from ecoctl.runtimes.local.postgres import running_as_root
from tests.helpers import free_port, use_free_edge_ports
from ecoctl.runtimes.local import SHARED_DATA, LocalRuntime
from ecoctl.runtimes.local.logs import follow as _follow
from ecoctl.runtimes.local.procfs import listens as _listens
from ecoctl.runtimes.local.supervisor import Program, Supervisor
from ecoctl.workspace import Workspace


# -- helpers -------------------------------------------------------------------------------------
def processes_mentioning(*needles: str) -> list[str]:
    """Command lines of live processes holding any of `needles` (from /proc, zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(needle in cmdline for needle in needles):
            found.append(f"{entry.name}: {cmdline}")
    return found


def running(pid: int) -> bool:
    """A live process (a zombie waiting for init to reap it is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http_get(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def new_ecosystem(directory: Path) -> Workspace:
    from ecoctl.commands.init import init_ecosystem

    init_ecosystem(directory, runtime="local", without=("web",))
    ports = iter(free_port() for _ in range(6))

    def use_free_ports(doc):
        doc["core"]["postgres"]["port"] = next(ports)
        doc["core"]["redis"]["port"] = next(ports)
        doc["core"]["authentik"]["port"] = next(ports)  # the development sign-in's
        doc["core"]["monitoring"]["prometheus_port"] = next(ports)
        doc["services"]["portfolio"]["port"] = next(ports)
        use_free_edge_ports(doc)

    Workspace(directory).ecosystem_file.update(use_free_ports)
    return Workspace(directory)


@pytest.fixture(scope="module")
def stack():
    """One ecosystem (in a folder only root can enter, like a home directory) and its runtime."""
    root = Path(tempfile.mkdtemp(prefix="ecoctl-local-"))  # mode 0700
    workspace = new_ecosystem(root / "demo")
    runtime = LocalRuntime(workspace)
    try:
        yield runtime
    finally:
        runtime.stop(remove_volumes=True)
        shutil.rmtree(root, ignore_errors=True)


def pg_connect(runtime: LocalRuntime, **kwargs):
    server = runtime.postgres_server()
    return psycopg.connect(server.conninfo(**kwargs), autocommit=True)


# -- supervisord configuration ------------------------------------------------------------------
def test_socket_path_falls_back_to_a_private_random_folder_when_too_long(tmp_path):
    near = Path(tempfile.mkdtemp(prefix="e", dir="/tmp"))  # tmp_path may be too long already
    try:
        short = Supervisor(near / ".ecoctl", "x")
        assert short.prepare_socket() == near / ".ecoctl" / "supervisor" / "supervisor.sock"
    finally:
        shutil.rmtree(near)
    deep = tmp_path / ("x" * 60) / ("y" * 60) / ".ecoctl"
    fallback = Supervisor(deep, "x").prepare_socket()
    try:
        assert len(str(fallback)) <= 107 and fallback.parent.name.startswith("ecoctl-")
        info = fallback.parent.stat()
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()
        assert Supervisor(deep, "x").socket == fallback  # stable: the same ecosystem finds its daemon
        other = Supervisor(tmp_path / ("z" * 60) / ("y" * 60) / ".ecoctl", "x").prepare_socket()
        assert other != fallback
        shutil.rmtree(other.parent)
    finally:
        shutil.rmtree(fallback.parent)


def test_config_escapes_values_and_is_private(tmp_path):
    supervisor = Supervisor(tmp_path / ".ecoctl", "ecoctl-test")
    secret = 'p%w,d\\x=y'
    program = Program("svc", ["/bin/echo", "100%", "a b"], environment={"DATABASE_PASSWORD": secret})
    assert supervisor.write_config([program]) is True
    assert supervisor.write_config([program]) is False  # same content: not rewritten
    text = supervisor.config_path.read_text()
    assert "command=/bin/echo 100%% 'a b'" in text
    assert 'DATABASE_PASSWORD="p%%w,d\\x=y"' in text
    assert stat.S_IMODE(supervisor.config_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(supervisor.folder.stat().st_mode) == 0o700
    # supervisord itself reads the value back verbatim
    from supervisor.options import ServerOptions

    options = ServerOptions()
    options.configfile = str(supervisor.config_path)
    options.process_config(do_usage=False)
    [group] = options.process_group_configs
    assert group.process_configs[0].environment == {"DATABASE_PASSWORD": secret}
    assert group.process_configs[0].command == "/bin/echo 100% 'a b'"
    with pytest.raises(EcoctlError, match="quote or a line break"):
        supervisor.render([Program("svc", ["/bin/true"], environment={"X": 'a"b'})])


def test_follow_reads_appended_lines_across_rotation(tmp_path):
    log = tmp_path / "svc.log"
    log.write_text("old line\n")
    lines = _follow(log, interval=0.02)

    def writer():
        time.sleep(0.2)
        with open(log, "a") as handle:
            handle.write("first\n")
        time.sleep(0.2)
        log.rename(tmp_path / "svc.log.1")
        log.write_text("after rotation\n")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert next(lines) == "first"
        assert next(lines) == "after rotation"
    finally:
        lines.close()
        thread.join()


def test_listens_tells_whose_socket_holds_a_port():
    import socket
    import subprocess

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        other = subprocess.Popen(["sleep", "30"])
        try:
            assert _listens(os.getpid(), port) is True
            assert _listens(other.pid, port) is False
        finally:
            other.kill()
            other.wait()
    assert _listens(os.getpid(), port) is False


def test_own_data_dir_when_the_server_user_can_reach_it():
    root = Path(tempfile.mkdtemp(prefix="ecoctl-reach-"))
    try:
        os.chmod(root, 0o755)
        workspace = new_ecosystem(root / "demo")
        os.chmod(workspace.state_dir, 0o711)  # .ecoctl is made 0700: let the `ecoctl` user through
        runtime = LocalRuntime(workspace)
        data_dir, reason = runtime.postgres_data_dir()
        assert data_dir == root / "demo" / ".ecoctl" / "postgres" / "data"
        assert reason == ""
        # the other programs' files go there too (`.ecoctl/run/`), services run from their folder
        assert runtime.program_home() == workspace.state_dir / "run" and not runtime.home_is_shared()
        assert runtime.service_run_dir("portfolio") == runtime.service_dir("portfolio")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_missing_binaries_are_stated_plainly(stack, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    rows = {row.name: row for row in stack.status()}
    assert rows["redis"].state == "absent"
    assert rows["redis"].detail == "redis-server not found on PATH: apt-get install redis-server"
    assert rows["prometheus"].state == "absent" and "prometheus not found on PATH" in rows["prometheus"].detail
    assert rows["grafana"].state == "absent" and "not available in the local runtime" in rows["grafana"].detail
    assert "ecoctl token" in rows["authentik"].detail
    with pytest.raises(UsageError, match="no component 'grafana'"):
        list(stack.logs("grafana"))


# -- PostgreSQL under supervisord -----------------------------------------------------------------
def test_postgres_starts_once_and_keeps_data_across_restarts(stack):
    workspace = stack.workspace
    assert stack.is_running() is False
    assert stack.start_postgres() is True
    assert stack.start_postgres() is False  # running: nothing changes
    assert stack.is_running() is True

    data_dir, reason = stack.postgres_data_dir()
    if running_as_root():  # the folder is 0700 root: the `ecoctl` user cannot reach it
        assert str(data_dir).startswith(str(SHARED_DATA)) and "cannot reach" in reason
    rows = {row.name: row for row in stack.status()}
    assert (rows["postgres"].state, rows["postgres"].health) == ("running", "healthy")
    assert str(data_dir) in rows["postgres"].detail

    with pg_connect(stack, password=workspace.env.get("POSTGRES_PASSWORD")) as conn:
        conn.execute("CREATE TABLE kept (value text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
    assert any("ready to accept connections" in line for line in stack.logs("postgres", tail=50))

    supervisord_pid = stack.supervisor.pid()
    assert stack.stop() is True
    assert stack.stop() is False
    assert processes_mentioning(str(workspace.root), str(data_dir)) == []
    assert not running(supervisord_pid)
    assert not port_open(workspace.ecosystem.core.postgres.port)
    assert any("fast shutdown request" in line for line in stack.logs("postgres", tail=50))
    assert stack.is_running() is False

    assert stack.start_postgres() is True
    with pg_connect(stack) as conn:
        assert conn.execute("SELECT value FROM kept").fetchall() == [("still here",)]


def test_processes_of_a_dead_supervisord_are_stopped(stack):
    """supervisord killed (OOM, kill -9): `up` and `down` still find and stop what it ran."""
    stack.start_postgres()
    monitoring = shutil.which("prometheus") is not None
    if monitoring:
        stack.start_monitoring()
    children = [stack.supervisor.info(name)["pid"] for name in ("postgres", "prometheus")[:1 + monitoring]]
    os.kill(stack.supervisor.pid(), 9)
    time.sleep(0.2)
    assert all(running(pid) for pid in children)
    assert stack.start_postgres() is True  # a new supervisord, after stopping the orphans
    assert not any(running(pid) for pid in children)
    with pg_connect(stack) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (1,)

    postmaster = stack.supervisor.info("postgres")["pid"]
    os.kill(stack.supervisor.pid(), 9)
    time.sleep(0.2)
    stack.stop()
    assert not running(postmaster)
    assert processes_mentioning(str(stack.workspace.root), str(stack.postgres_data_dir()[0])) == []


def test_postgres_port_taken_is_one_clear_error(stack):
    import socket

    stack.stop()
    port = free_port()  # the old one may linger in TIME_WAIT, which a plain bind refuses
    stack.workspace.ecosystem_file.update(lambda doc: doc["core"]["postgres"].update(port=port))
    # bound but not listening: ecoctl's check finds the port free, postgres cannot bind it, and
    # postgres's own FATAL line is the message
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port))
    try:
        with pytest.raises(EcoctlError, match=r"did not .*FATAL.*ecoctl logs postgres"):
            stack.start_postgres()
        assert stack.supervisor.info("postgres")["statename"] not in ("RUNNING", "STARTING")
    finally:
        blocker.close()
    # another program listens there: ecoctl says so before starting anything
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", port))
    blocker.listen()
    try:
        with pytest.raises(EcoctlError, match=rf"cannot start postgres: port {port} on 127.0.0.1 is taken"
                                              r".*change core.postgres.port in ecosystem.yaml"):
            stack.start_postgres()
    finally:
        blocker.close()
    stack.stop()
    assert stack.start_postgres() is True


# -- Prometheus ---------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not on PATH (apt-get install prometheus)")
def test_prometheus_runs_with_the_ecosystem_config(stack):
    stack.start_postgres()
    assert stack.start_monitoring() is True
    assert stack.start_monitoring() is False
    port = stack.ecosystem.core.monitoring.prometheus_port
    assert http_get(f"http://127.0.0.1:{port}/-/ready") == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status/flags", timeout=5) as response:
        flags = json.load(response)["data"]
    # its own copy of the ecosystem's prometheus.yml, where its user reads it; no lifecycle API
    running_config = stack.place(PROMETHEUS).config
    assert flags["config.file"] == str(running_config)
    assert running_config.read_text() == (stack.workspace.root / PROMETHEUS.local.config_from).read_text()
    assert flags["web.enable-lifecycle"] == "false"
    rows = {row.name: row for row in stack.status()}
    assert (rows["prometheus"].state, rows["prometheus"].health) == ("running", "healthy")


# -- services -----------------------------------------------------------------------------------
def provision_database(runtime: LocalRuntime, service: str) -> None:
    """The service's role and database, by the postgres provider."""
    from ecoctl.commands.reconcile import converge

    converge(Workspace(runtime.workspace.root), only={"postgres"})


def add_broken_service(runtime: LocalRuntime) -> None:
    """A service whose app dies at import: supervisord gives up on it."""
    folder = runtime.service_dir("broken")
    (folder / "broken").mkdir(parents=True)
    (folder / "broken" / "__init__.py").write_text("")
    # it dies after supervisord's old default `startsecs` (1s), which used to mean a restart loop
    (folder / "broken" / "main.py").write_text(
        "import sys, time\ntime.sleep(1.5)\n"
        "print('broken: DATABASE_URL is wrong on purpose', file=sys.stderr)\nsys.exit(3)\n")
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "broken"\nversion = "0"\n[build-system]\nrequires = ["setuptools"]\n'
        'build-backend = "setuptools.build_meta"\n[tool.setuptools]\npackages = ["broken"]\n')
    runtime.workspace.record({"BROKEN_DB_PASSWORD": "not-a-real-password"})

    def add(doc):
        doc["services"]["broken"] = {"template": "python-fastapi", "port": free_port(),
                                     "pattern": "separate"}

    runtime.workspace.ecosystem_file.update(add)


def test_a_failing_service_is_reported_with_its_log_and_the_rest_stays_up(stack):
    stack.start_postgres()
    add_broken_service(stack)
    try:
        assert stack.start_service_list(["broken"]) is True
        assert stack.build_service("broken", stack.local_run("broken")) is False  # inputs unchanged: no rebuild
        started = time.monotonic()
        assert stack.wait_healthy(["broken"], timeout=60) == {"broken": "unhealthy"}
        assert time.monotonic() - started < 30  # supervisord gave up: no need to wait the timeout
        assert any("wrong on purpose" in line for line in stack.logs("broken", tail=5))
        rows = {row.name: row for row in stack.status()}
        assert rows["broken"].state == "failed" and "wrong on purpose" in rows["broken"].detail, \
            list(stack.logs("broken", tail=15))
        assert rows["postgres"].health == "healthy"
        assert stack.stop_service("broken") is True
        assert stack.supervisor.info("broken") is None and not stack.venv_dir("broken").exists()
    finally:
        stack.workspace.ecosystem_file.update(lambda doc: doc["services"].pop("broken", None))


def portfolio_installable(stack: LocalRuntime) -> Path:
    folder = stack.service_dir("portfolio")
    assert (folder / "portfolio_service" / "main.py").exists() and (folder / "pyproject.toml").exists()
    return folder


def test_portfolio_runs_under_uvicorn_and_accepts_a_local_token(stack):
    from ecoctl.commands.tokens import mint_token

    workspace = stack.workspace
    folder = portfolio_installable(stack)
    stack.start_postgres()
    provision_database(stack, "portfolio")
    stack.start_core()  # the development sign-in: the service fetches its keys from it

    assert stack.start_services([]) is True
    assert stack.wait_healthy(["portfolio"], timeout=90) == {"portfolio": "healthy"}
    assert stack.start_services([]) is False  # running, dependencies unchanged: nothing to do

    url = stack.service_url("portfolio")
    assert http_get(f"{url}/healthz") == 200
    assert http_get(f"{url}/portfolios") == 401
    assert http_get(f"{url}/portfolios", token=mint_token(workspace, "portfolio")) == 200
    rows = {row.name: row for row in stack.status()}
    assert (rows["portfolio"].state, rows["portfolio"].health, rows["portfolio"].url) == \
        ("running", "healthy", url)

    # secrets reach the service through supervisord's config (0600), never through argv
    secrets_ = [workspace.env.get("PORTFOLIO_DB_PASSWORD"), workspace.env.get("POSTGRES_PASSWORD")]
    pid = stack.supervisor.info("portfolio")["pid"]
    assert not any(secret in line for line in processes_mentioning(str(workspace.root))
                   for secret in secrets_)
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"DATABASE_PASSWORD={secrets_[0]}".encode() in environ
    assert stat.S_IMODE(stack.supervisor.config_path.stat().st_mode) == 0o600

    # a changed dependency file reinstalls and restarts the running service
    with open(folder / ("pyproject.toml" if (folder / "pyproject.toml").exists() else "requirements.txt"),
              "a") as handle:
        handle.write("\n# changed\n")
    assert stack.start_services([]) is True
    assert stack.wait_healthy(["portfolio"], timeout=90) == {"portfolio": "healthy"}
    assert stack.supervisor.info("portfolio")["pid"] != pid

    assert stack.stop() is True
    assert processes_mentioning(str(workspace.root)) == []
    assert not port_open(workspace.ecosystem.services["portfolio"].port)


def test_an_added_service_starts_in_the_running_stack(stack):
    from ecoctl.commands.reconcile import converge
    from ecoctl.commands.tokens import mint_token

    portfolio_installable(stack)
    stack.start_postgres()
    provision_database(stack, "portfolio")
    stack.start_core()  # before loyalty is declared: the sign-in learns of its client when it starts
    port = free_port()
    stack.workspace.ecosystem_file.update(
        lambda doc: doc["services"].update({"loyalty": {"template": "python-fastapi", "port": port}}))
    converge(Workspace(stack.workspace.root), only={"files"})  # renders services/loyalty
    provision_database(stack, "loyalty")
    stack.start_services([])
    portfolio_pid = stack.supervisor.info("portfolio")["pid"]

    assert stack.start_services(["loyalty"]) is True
    assert stack.wait_healthy(["portfolio", "loyalty"], timeout=90) == \
        {"portfolio": "healthy", "loyalty": "healthy"}
    assert stack.supervisor.info("portfolio")["pid"] == portfolio_pid  # left running as it was
    url = stack.service_url("loyalty")
    assert http_get(f"{url}/healthz") == 200
    assert http_get(f"{url}/items", token=mint_token(stack.workspace, "loyalty")) == 200
    assert http_get(f"{url}/items", token=mint_token(stack.workspace, "portfolio")) == 401
    assert [row.name for row in stack.status()][-2:] == ["portfolio", "loyalty"]
    loyalty_client = contract.client_id(stack.ecosystem, "loyalty")
    assert loyalty_client in json.loads(stack.place(SIGNIN).config.read_text())["clients"]
    signin_pid = stack.supervisor.info("signin")["pid"]
    sign_in = f"http://127.0.0.1:{stack.ecosystem.core.authentik.port}/application/o/{loyalty_client}/jwks/"
    assert http_get(sign_in) == 200  # known when start_services returned
    stack.workspace.ecosystem_file.update(lambda doc: doc["services"].pop("loyalty"))  # remove-service
    stack.services_changed()
    assert loyalty_client not in json.loads(stack.place(SIGNIN).config.read_text())["clients"]
    assert stack.supervisor.info("signin")["pid"] == signin_pid  # it read it on SIGHUP, sessions kept
    assert http_get(sign_in) == 404  # forgotten when services_changed returns
    assert stack.probe("signin") == "healthy"
    assert stack.stop() is True
    assert processes_mentioning(str(stack.workspace.root)) == []


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not on PATH (apt-get install redis-server)")
def test_redis_runs_when_its_binary_is_on_path(stack):
    stack.start_postgres()
    assert stack.start_core() is True
    assert stack.start_core() is False
    rows = {row.name: row for row in stack.status()}
    assert (rows["redis"].state, rows["redis"].health) == ("running", "healthy")
    stack.stop()
    assert not port_open(stack.ecosystem.core.redis.port)


def test_down_with_volumes_removes_the_data(stack):
    stack.start_postgres()
    data_dir = stack.postgres_data_dir()[0]
    assert (data_dir / "PG_VERSION").exists()
    assert stack.stop(remove_volumes=True) is True
    assert not data_dir.exists() and not any(folder.exists() for folder in stack.component_folders())
    assert stack.place(REDIS).folder in stack.component_folders()
    if str(data_dir).startswith(str(SHARED_DATA)):
        assert not data_dir.parent.exists()
    assert processes_mentioning(str(stack.workspace.root), str(data_dir)) == []
    assert stack.stop(remove_volumes=True) is False
    assert (stack.workspace.root / "ecosystem.yaml").exists() and (stack.workspace.root / ".env").exists()
