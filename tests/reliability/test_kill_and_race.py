"""Killed at a random moment, and run twice at once (issue 12): after each SIGKILL of `apply` or
`add-service`, every file ecoctl writes still parses and the next `apply` converges; two
`add-service` runs started together both land. Real PostgreSQL, real CLI, local runtime (no
Authentik, the stack is not running: services are not started, which is reported, not an error).

ECOCTL_KILLS sets how many kills must land mid-run (default 20); the loop is bounded at 4x that."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from ruamel.yaml import YAML

from ecoctl.commands.init import init_ecosystem
from ecoctl.model import EcosystemFile
from ecoctl.support.envfile import EnvFile
from tests.helpers import free_port, point_ecosystem_at, run_ecoctl

KILLS = int(os.environ.get("ECOCTL_KILLS", "20"))


@pytest.fixture
def root(tmp_path, pg):
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    point_ecosystem_at(root, postgres_port=pg.port, postgres_password=pg.password, prometheus_port=free_port())
    return root


def every_file_parses(root) -> None:
    model = EcosystemFile.load(root / "ecosystem.yaml").model
    env = EnvFile(root / ".env")
    assert env.get("POSTGRES_PASSWORD")
    yaml = YAML(typ="safe")
    for path in [root / "compose.yaml", root / "monitoring/prometheus/prometheus.yml",
                 *root.glob("services/*/compose.yaml")]:
        if path.exists():
            assert isinstance(yaml.load(path.read_text()), dict), path
    for path in root.glob("monitoring/grafana/dashboards/*.json"):
        json.loads(path.read_text())
    assert set(model.services) >= {"portfolio"}


def start(root, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ecoctl", *args], cwd=root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_kills_at_random_moments_leave_parseable_files_and_the_next_apply_converges(root):
    rng = random.Random(12)
    landed, runs = 0, 0
    duration = {"add-service": 3.0, "apply": 2.0}  # seconds a run took when not killed, learnt below
    while landed < KILLS:
        runs += 1
        assert runs <= 4 * KILLS, f"only {landed} of {KILLS} kills landed mid-run in {runs - 1} runs"
        if rng.random() < 0.5:
            args = ("add-service", f"svc{runs % 5}", "--port", str(8400 + runs % 5))
        else:
            args = ("apply", "--yes")
        began = time.monotonic()
        child = start(root, *args)
        time.sleep(rng.uniform(0.1, 0.95) * duration[args[0]])  # a random moment of a typical run
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            landed += 1
            child.wait(timeout=120)
        else:
            child.wait(timeout=120)
            duration[args[0]] = max(0.5, time.monotonic() - began)
        every_file_parses(root)
        applied = run_ecoctl("apply", "--yes", cwd=root)
        assert applied.returncode == 0, f"after killing {args}: {applied.stdout}{applied.stderr}"
        plan = run_ecoctl("plan", "--detailed-exitcode", cwd=root)
        assert plan.returncode == 0, f"after killing {args}: {plan.stdout}{plan.stderr}"


def test_two_add_service_runs_at_once_both_land(root):
    first = start(root, "add-service", "alpha", "--port", "8501")
    second = start(root, "add-service", "beta", "--port", "8502")
    for child in (first, second):
        assert child.wait(timeout=300) == 0, child.stderr.read()
    model = EcosystemFile.load(root / "ecosystem.yaml").model
    assert {"alpha", "beta"} <= set(model.services)
    env = EnvFile(root / ".env")
    assert env.get("ALPHA_DB_PASSWORD") and env.get("BETA_DB_PASSWORD")
    every_file_parses(root)
    assert run_ecoctl("plan", "--detailed-exitcode", cwd=root).returncode == 0
