"""Edges of the command line: exit codes, option checks, re-runs that must keep what was said before."""

import pytest

from ecoctl.support.envfile import EnvFile
from ecoctl.model import EcosystemFile
from ecoctl.commands.init import init_ecosystem
from tests.helpers import run_ecoctl


@pytest.fixture
def root(tmp_path):
    init_ecosystem(tmp_path / "eco", runtime="local", without=("web",))
    return tmp_path / "eco"


def test_detailed_exitcode_is_1_on_error_not_2(root):
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text().replace("runtime: local", "runtime: locl"))
    result = run_ecoctl("plan", "--detailed-exitcode", cwd=root)
    assert result.returncode == 1 and "ecosystem.yaml:" in result.stderr


def test_only_names_a_known_system(root):
    result = run_ecoctl("plan", "--only", "compsoe", cwd=root)
    assert result.returncode == 2 and "compsoe" in result.stderr and "compose" in result.stderr


def test_a_core_compose_service_name_is_reserved(root):
    result = run_ecoctl("add-service", "authentik-server", "--no-apply", cwd=root)
    assert result.returncode == 2 and "reserved" in result.stderr


def test_rerun_without_options_keeps_pattern_and_reads(root):
    first = run_ecoctl("add-service", "analytics", "--pattern", "separate", "--reads", "portfolio",
                       "--port", "8090", "--no-apply", cwd=root)
    assert first.returncode == 0, first.stderr
    again = run_ecoctl("add-service", "analytics", "--no-apply", cwd=root)
    assert again.returncode == 0, again.stderr
    spec = EcosystemFile.load(root / "ecosystem.yaml").model.services["analytics"]
    assert (spec.pattern, spec.reads, spec.port) == ("separate", ["portfolio"], 8090)
    assert (root / "services/analytics/compose.yaml").exists()


def test_a_service_added_by_hand_gets_its_secret_before_compose_needs_it(root):
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text() + "  rewards:\n    port: 8200\n")
    result = run_ecoctl("apply", "--yes", "--only", "files", "--only", "compose", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "REWARDS_DB_PASSWORD=" in (root / ".env").read_text()  # generated before planning
    assert len(EnvFile(root / ".env").get("REWARDS_DB_PASSWORD")) >= 32
    assert run_ecoctl("plan", "--only", "compose", "--detailed-exitcode", cwd=root).returncode == 0


def test_token_refuses_where_services_trust_authentik(tmp_path):
    init_ecosystem(tmp_path / "eco", runtime="docker", without=("web",))
    result = run_ecoctl("token", "portfolio", cwd=tmp_path / "eco")
    assert result.returncode == 1 and "Authentik" in result.stderr


def test_commands_that_change_the_ecosystem_take_turns(root):
    import subprocess
    import sys
    import time

    from ecoctl.workspace import Workspace

    holder = Workspace(root)
    holder.lock_for_changes()
    waiting = subprocess.Popen([sys.executable, "-m", "ecoctl", "add-service", "loyalty", "--no-apply"],
                               cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    assert waiting.poll() is None  # it waits for the lock instead of interleaving its writes
    holder.env.set("WRITTEN_BY_THE_HOLDER", "1")
    holder.env.save()
    holder.unlock()
    assert waiting.wait(timeout=60) == 0, waiting.stderr.read()
    env = EnvFile(root / ".env")
    assert env.get("WRITTEN_BY_THE_HOLDER") == "1" and env.get("LOYALTY_DB_PASSWORD")
