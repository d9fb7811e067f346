"""Issue 28 items 10-11 through the real CLI, against the Authentik double over HTTP: a wrong
AUTHENTIK_TOKEN in the environment is named as read from there (it beats .env) by plan, apply and
doctor, and doctor tells an unknown token from one without rights; switching to an external
Authentik after moving its port deletes its compose services without a KeyError."""

from __future__ import annotations

import json

from tests.authentik_fixtures import authentik_double, authentik_double_server, write_workspace  # noqa: F401
from tests.helpers import run_ecoctl

FROM_ENVIRONMENT = ("error: Authentik rejected the API token read from AUTHENTIK_TOKEN in the environment "
                    "(Token invalid/expired): set it to a valid token (Admin > Directory > Tokens, intent API)")


def test_a_wrong_token_in_the_environment_is_named_where_it_was_read(tmp_path, authentik_double):
    write_workspace(tmp_path, authentik_double.base_url, authentik_double.token, {})
    wrong = {"AUTHENTIK_TOKEN": "not-the-token"}
    for args in (("plan", "--only", "authentik"), ("apply", "--yes", "--only", "authentik")):
        done = run_ecoctl("--dir", str(tmp_path), *args, env=wrong)
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip() == FROM_ENVIRONMENT
    assert run_ecoctl("--dir", str(tmp_path), "plan", "--only", "authentik").returncode == 0  # .env's is right


def test_doctor_calls_an_invalid_token_invalid_not_a_rights_problem(tmp_path, authentik_double):
    write_workspace(tmp_path, authentik_double.base_url, authentik_double.token, {})
    done = run_ecoctl("--dir", str(tmp_path), "doctor", "--json", env={"AUTHENTIK_TOKEN": "not-the-token"})
    checks = {check["name"]: check for check in json.loads(done.stdout)["checks"]}
    assert done.returncode == 1
    assert checks["authentik"] == {
        "name": "authentik", "status": "fail",
        "verdict": f"{authentik_double.base_url} does not know the API token (invalid or expired, 403)",
        "fix": "set AUTHENTIK_TOKEN in the environment to a valid token (Admin > Directory > Tokens, intent API)"}
    authentik_double.token_active = False  # the token in .env, expired
    done = run_ecoctl("--dir", str(tmp_path), "doctor", "--json")
    checks = {check["name"]: check for check in json.loads(done.stdout)["checks"]}
    assert checks["authentik"]["fix"].startswith(f"set AUTHENTIK_BOOTSTRAP_TOKEN in {tmp_path / '.env'} ")


def test_switching_to_an_external_authentik_after_moving_its_port(tmp_path):
    assert run_ecoctl("init", "eco", "--runtime", "docker", "--without", "web", cwd=tmp_path).returncode == 0
    root = tmp_path / "eco"
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text().replace("    port: 9000", "    port: 9100"))
    assert run_ecoctl("apply", "--yes", "--only", "compose", cwd=root).returncode == 0
    assert "127.0.0.1:9100:9000" in (root / "compose.yaml").read_text()
    spec.write_text(spec.read_text().replace("    port: 9100", "    port: 9200")
                    .replace("    # url: https://auth.example.com", "    url: http://127.0.0.1:9"))
    plan = run_ecoctl("plan", "--only", "compose", cwd=root)
    assert "- delete compose service authentik-server" in plan.stdout
    assert "update compose ports authentik-server" not in plan.stdout
    done = run_ecoctl("apply", "--yes", "--only", "compose", cwd=root)
    assert done.returncode == 0, done.stderr
    assert "authentik" not in (root / "compose.yaml").read_text()
    assert run_ecoctl("plan", "--only", "compose", "--detailed-exitcode", cwd=root).returncode == 0
