"""Alertmanager's container recipe on a real Docker engine: compose.yaml's entry (command, the
mounted config ecoctl generates, the data volume, the wget healthcheck) runs the image
tests/docker/setup.sh builds from Debian's prometheus-alertmanager, healthy, with the webhook
receiver from ecosystem.yaml loaded."""

from __future__ import annotations

import secrets
import subprocess
import time

import httpx
import pytest

from ecoctl.commands.init import init_ecosystem
from ecoctl.workspace import Workspace
from tests.helpers import DOCKER_TEST_IMAGES, compose_binary, converge_providers, docker_engine_problem, free_port

IMAGE = "ecoctl-test/alertmanager:latest"


def _problem() -> str | None:
    problem = docker_engine_problem()
    if problem is None and subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode:
        problem = f"{IMAGE} missing: run tests/docker/setup.sh"
    return problem


pytestmark = [pytest.mark.docker]  # the engine's tests share one worker (tests/conftest.py)


@pytest.fixture
def ecosystem(tmp_path):
    if (problem := _problem()) is not None:
        pytest.skip(problem)
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="docker", without=("web",))
    port = free_port()

    def configure(document):
        document["name"] = f"am{secrets.token_hex(3)}"
        document["images"] = {**DOCKER_TEST_IMAGES, "alertmanager": IMAGE}
        document["core"]["monitoring"]["alertmanager"] = {
            "enabled": True, "port": port, "webhook_url": "https://hooks.example.com/alerts"}

    Workspace(root).ecosystem_file.update(configure)
    (root / "compose.yaml").unlink()  # rendered again from the edited ecosystem.yaml, as init does
    init_ecosystem(root, force=True)
    from ecoctl.providers import load_providers

    converge_providers(load_providers(Workspace(root), ("files", "compose", "prometheus")))
    command = [compose_binary(), "--project-directory", str(root), "--env-file", str(root / ".env"),
               "-f", str(root / "compose.yaml")]
    try:
        yield root, port, command
    finally:
        subprocess.run([*command, "down", "--volumes", "--remove-orphans"], capture_output=True, timeout=120)


def test_the_container_recipe_runs_alertmanager_with_the_generated_config(ecosystem):
    root, port, command = ecosystem
    compose = (root / "compose.yaml").read_text()
    assert f"127.0.0.1:{port}:9093" in compose and "./monitoring/alertmanager:/etc/alertmanager:ro" in compose
    assert "job_name: alertmanager" in (root / "monitoring/prometheus/prometheus.yml").read_text()
    assert "targets: ['alertmanager:9093']" in (root / "monitoring/prometheus/prometheus.yml").read_text()
    started = subprocess.run([*command, "up", "-d", "--wait", "--wait-timeout", "90", "alertmanager"],
                             capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stderr[-2000:]
    deadline = time.monotonic() + 30
    while True:
        try:
            status = httpx.get(f"http://127.0.0.1:{port}/api/v2/status", timeout=5)
            if status.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "Alertmanager did not answer /api/v2/status"
        time.sleep(0.5)
    loaded = status.json()["config"]["original"]
    assert "https://hooks.example.com/alerts" in loaded and "receiver: webhook" in loaded
    assert status.json()["cluster"]["status"] == "disabled"  # no gossip port: one Alertmanager
