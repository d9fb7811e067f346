"""Exit codes a CI script can trust (issue 12): a command asked to converge that could not reach a
system the ecosystem uses exits 1 and names the systems on stderr; JSON carries the same `pending`.
PostgreSQL is "down" here by pointing the ecosystem at a port nothing listens on (no server needed)."""

import json

import pytest

from ecoctl.commands.init import init_ecosystem
from tests.helpers import free_port, run_ecoctl


@pytest.fixture
def down(tmp_path):
    """A local-runtime ecosystem whose PostgreSQL does not answer."""
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text().replace("    port: 5432", f"    port: {free_port()}"))
    return root


def pending_systems(stdout: str) -> list[str]:
    return [entry["system"] for entry in json.loads(stdout)["pending"]]


def test_plain_plan_with_a_pending_system_exits_1_naming_it(down):
    result = run_ecoctl("plan", cwd=down)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "postgres" in result.stderr and "did not answer" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_plan_json_carries_the_same_pending_and_authentik_is_not_used(down):
    result = run_ecoctl("plan", "--json", cwd=down)
    assert result.returncode == 1
    answer = json.loads(result.stdout)
    assert pending_systems(result.stdout) == ["postgres"]  # never authentik: the local runtime has none
    assert answer["not_used"] == ["authentik"]


def test_detailed_exitcode_keeps_2_for_pending(down):
    assert run_ecoctl("plan", "--detailed-exitcode", cwd=down).returncode == 2


def test_apply_yes_exits_1_when_postgres_does_not_answer(down):
    result = run_ecoctl("apply", "--yes", cwd=down)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "postgres" in result.stderr and "Applied" in result.stdout  # the file changes were made
    again = run_ecoctl("apply", "--yes", "--json", cwd=down)  # nothing left to do but postgres
    assert again.returncode == 1 and pending_systems(again.stdout) == ["postgres"]
    assert "postgres" in again.stderr


def test_add_service_exits_1_and_does_not_claim_the_stack_is_down(down):
    result = run_ecoctl("add-service", "loyalty", "--json", cwd=down)
    assert result.returncode == 1, result.stdout + result.stderr
    answer = json.loads(result.stdout)
    assert pending_systems(result.stdout) == ["postgres", "runtime"]
    runtime = next(entry["reason"] for entry in answer["pending"] if entry["system"] == "runtime")
    assert "postgres did not answer" in runtime and "not running" not in runtime
    assert "postgres" in result.stderr


def test_add_service_no_apply_is_not_asked_to_converge(down):
    result = run_ecoctl("add-service", "loyalty", "--no-apply", "--json", cwd=down)
    assert result.returncode == 0, result.stderr
    assert "authentik" not in pending_systems(result.stdout)


def test_remove_service_exits_1_when_postgres_does_not_answer(down):
    assert run_ecoctl("add-service", "loyalty", "--no-apply", cwd=down).returncode == 0
    result = run_ecoctl("remove-service", "loyalty", "--json", cwd=down)
    assert result.returncode == 1 and pending_systems(result.stdout) == ["postgres"]
    assert "postgres" in result.stderr


def test_a_system_not_used_is_never_pending(down):
    result = run_ecoctl("plan", "--only", "authentik", "--json", cwd=down)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["pending"] == [] and answer["not_used"] == ["authentik"]
