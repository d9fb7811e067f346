"""A core component added through the catalog alone runs under the local and the docker runtimes.

`echo` is a test-only component: a `python3 -m http.server` on its own port, serving its data
folder, with an http health check. It is appended to `ecoctl.components.CATALOG` and nothing else
is told about it: the local runtime runs it under supervisord, the docker runtime from the
compose.yaml `init` writes, and `status`, `doctor` and `up`'s notes speak of it. An optional
component whose binary is missing is skipped, said the same way by each of them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest

from ecoctl import components
from ecoctl.components import Component, Container, Health, Local, Port
from ecoctl.workspace import Workspace
from tests.helpers import DOCKER_TEST_IMAGES, docker_engine_problem, free_port, use_free_edge_ports

SYSTEM_PYTHON = "/usr/bin/python3"
"""A Python the programs' unprivileged user can run (ecoctl's own may live under /root)."""


def echo_component(port: int, binary: str = SYSTEM_PYTHON) -> Component:
    return Component(
        "echo", "core", Health("http", "/"), ports=(Port(8000, "tests.echo_port", lambda ecosystem: port),),
        data="echo_data", optional=True,
        local=Local(binary, "apt-get install python3",
                    args=lambda place: ["-m", "http.server", str(place.port), "--bind", "127.0.0.1",
                                        "--directory", str(place.data)]),
        container=Container(
            "python", command=("python3", "-m", "http.server", "8000", "--directory", "/data"),
            data_path="/data",
            healthcheck={"test": ["CMD", "python3", "-c",
                                  "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/')"],
                         "interval": "1s", "timeout": "3s", "retries": 60}))


@pytest.fixture
def echo(monkeypatch):
    """The test component, registered through the catalog only."""
    component = echo_component(free_port())
    monkeypatch.setattr(components, "CATALOG", [*components.CATALOG, component])
    return component


# -- local ----------------------------------------------------------------------------------------
@pytest.fixture
def local_root():
    root = Path(tempfile.mkdtemp(prefix="ecoctl-catalog-"))  # 0700, as a home directory is
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason=f"{SYSTEM_PYTHON} missing (apt-get install python3)")
def test_the_local_runtime_runs_a_component_declared_in_the_catalog(echo, local_root):
    from ecoctl.commands.doctor import doctor
    from ecoctl.runtimes.local import LocalRuntime
    from tests.integration.test_local_runtime import new_ecosystem

    workspace = new_ecosystem(local_root / "demo")
    runtime = LocalRuntime(workspace)
    port = echo.ports[0].host(workspace.ecosystem)
    try:
        assert "echo" in [program.name for program in runtime.programs()]
        runtime.start_postgres()  # the stack runs: doctor then tells its own ports from others'
        assert runtime.start_core() is True  # Redis (when installed) and echo, each healthy
        assert runtime.start_core() is False
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        rows = {row.name: row for row in runtime.status()}
        assert (rows["echo"].state, rows["echo"].health, rows["echo"].url) == \
            ("running", "healthy", f"http://127.0.0.1:{port}")
        checks = {check.name: check for check in doctor(Workspace(workspace.root))}
        assert checks[SYSTEM_PYTHON].status == "ok"
        assert checks[f"port {port}"].verdict == "held by this ecosystem's echo"
        assert "echo" in runtime.log_components()
    finally:
        runtime.stop(remove_volumes=True)
    assert not runtime.place(echo).folder.exists()
    assert not _answers(port)


def test_a_missing_optional_binary_is_skipped_alike_in_up_status_and_doctor(monkeypatch, local_root):
    from ecoctl.commands.doctor import doctor
    from ecoctl.runtimes.local import LocalRuntime
    from tests.integration.test_local_runtime import new_ecosystem

    ghost = echo_component(free_port(), binary="ecoctl-test-no-such-binary")
    monkeypatch.setattr(components, "CATALOG", [*components.CATALOG, ghost])
    workspace = new_ecosystem(local_root / "demo")
    messages: list[str] = []
    runtime = LocalRuntime(workspace, progress=messages.append)
    said = "ecoctl-test-no-such-binary not found on PATH: apt-get install python3"
    try:
        runtime.start_core()
        assert f"echo is not started: {said}" in messages  # what `up` shows while it runs
        assert runtime.not_run()["echo"] == said  # and in its summary ("echo is not running: ...")
        row = {row.name: row for row in runtime.status()}["echo"]
        assert (row.state, row.detail) == ("absent", said)
        check = {check.name: check for check in doctor(Workspace(workspace.root))}["ecoctl-test-no-such-binary"]
        assert (check.status, check.fix) == ("skip", "apt-get install python3")
        assert check.verdict.startswith("ecoctl-test-no-such-binary not found on PATH")
    finally:
        runtime.stop(remove_volumes=True)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


# -- docker ---------------------------------------------------------------------------------------
ENGINE_PROBLEM = docker_engine_problem()


@pytest.mark.docker
@pytest.mark.skipif(ENGINE_PROBLEM is not None, reason=ENGINE_PROBLEM or "")
def test_the_docker_runtime_runs_a_component_declared_in_the_catalog(echo, tmp_path):
    from ecoctl.commands.init import init_ecosystem
    from ecoctl.runtimes.docker import DockerRuntime

    root = tmp_path / "eco"
    init_ecosystem(root, runtime="docker", without=("web",))
    ports = {"postgres": free_port(), "redis": free_port(), "prometheus": free_port()}

    def configure(document):
        document["name"] = f"cat{secrets.token_hex(3)}"
        document["images"] = dict(DOCKER_TEST_IMAGES)
        document["core"]["postgres"]["port"] = ports["postgres"]
        document["core"]["redis"]["port"] = ports["redis"]
        document["core"]["monitoring"]["prometheus_port"] = ports["prometheus"]
        document["core"]["authentik"]["url"] = "http://127.0.0.1:9"  # not started by start_core
        use_free_edge_ports(document)

    Workspace(root).ecosystem_file.update(configure)
    (root / "compose.yaml").unlink()
    init_ecosystem(root, force=True)  # compose.yaml from the edited spec, echo included
    compose = (root / "compose.yaml").read_text()
    assert "  echo:\n    image: ecoctl-test/python:3\n" in compose and "  echo_data:" in compose
    port = echo.ports[0].host(Workspace(root).ecosystem)
    runtime = DockerRuntime(Workspace(root))
    try:
        assert runtime.start_core() is True  # `compose up --wait redis echo`: both healthy
        assert runtime.start_core() is False
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        rows = {row.name: row for row in runtime.status()}
        assert (rows["echo"].state, rows["echo"].health, rows["echo"].url) == \
            ("running", "healthy", f"http://127.0.0.1:{port}")
        assert runtime.holds_port("echo", port)
        images = {check.name: check for check in runtime.doctor_checks()}["images"]
        assert images.status == "ok" and "ecoctl-test/python:3" in images.verdict
    finally:
        runtime.stop(remove_volumes=True)
        runtime.close()
    assert not _answers(port)
