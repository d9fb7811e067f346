"""Issue 28 items 7-9: the swarm runtime's failures, through the real CLI on a single-node swarm.

    up with a postgres image the engine lacks -> fails at once naming postgres and "No such image";
    status says postgres failed (not "`ecoctl up` starts it")
    -> up with the stack's own Authentik, whose image is missing here -> fails at once naming it
    -> switch to an external Authentik (the double) -> up prunes authentik-server/worker, prints
       neither `docker build` output nor Docker's --detach notice; status: no failure, no drift
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest

from ecoctl.workspace import Workspace
from tests.authentik_fixtures import authentik_on_bridge  # noqa: F401 (a fixture)
from tests.helpers import free_port, use_free_edge_ports
from tests.integration.test_swarm_runtime import ENGINE_PROBLEM, TEST_IMAGES, _swarm_state, ecoctl

pytestmark = [pytest.mark.docker, pytest.mark.skipif(ENGINE_PROBLEM is not None, reason=ENGINE_PROBLEM or "")]
ABSENT_POSTGRES = "ecoctl-test/absent-postgres:none"
AUTHENTIK_IMAGE = "ghcr.io/goauthentik/server:2025.12.4"


def configure(root: Path, change) -> None:
    Workspace(root).ecosystem_file.update(change)


@pytest.fixture(scope="module")
def eco(tmp_path_factory):
    if subprocess.run(["docker", "image", "inspect", AUTHENTIK_IMAGE], capture_output=True).returncode == 0:
        pytest.skip(f"{AUTHENTIK_IMAGE} is on this engine: a missing Authentik image cannot be shown")
    swarm_before = _swarm_state()
    root = tmp_path_factory.mktemp("swarmfail") / "eco"
    assert ecoctl(root.parent, "init", str(root), "--runtime", "swarm", "--without", "web").returncode == 0
    name = f"sf{secrets.token_hex(3)}"
    ports = {key: free_port() for key in ("postgres", "redis", "portfolio")}

    def first(document):
        document["name"] = name
        document["images"] = {**TEST_IMAGES, "postgres": ABSENT_POSTGRES}
        core = document["core"]
        core["postgres"]["port"], core["redis"]["port"] = ports["postgres"], ports["redis"]
        core["monitoring"]["enabled"] = False
        document["services"]["portfolio"]["port"] = ports["portfolio"]
        document["services"]["portfolio"]["redirect_uris"] = [f"http://127.0.0.1:{ports['portfolio']}/callback"]
        use_free_edge_ports(document)

    configure(root, first)
    (root / "compose.yaml").unlink()  # re-rendered from the edited spec
    assert ecoctl(root, "init", str(root), "--force").returncode == 0
    try:
        yield {"root": root, "name": name, "init": ["--init-swarm"] if swarm_before == "inactive" else []}
    finally:
        ecoctl(root, "down", "--volumes", "--yes", timeout=300)
        if swarm_before == "inactive" and _swarm_state() == "active":
            subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True, timeout=60)


def error_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return lines[0]


def services_of(name: str) -> set[str]:
    listed = subprocess.run(["docker", "service", "ls", "--format", "{{.Name}}", "--filter",
                             f"label=com.docker.stack.namespace={name}"], capture_output=True, text=True)
    return {line.removeprefix(f"{name}_") for line in listed.stdout.split()}


class TestSwarmFailures:
    def test_a_missing_postgres_image_fails_at_once_naming_it(self, eco):
        done = ecoctl(eco["root"], "up", *eco["init"], timeout=600)
        assert done.returncode == 1
        assert error_line(done) == (f"error: swarm cannot start postgres: No such image: {ABSENT_POSTGRES}: "
                                    "`docker pull` it on every node, or set `images:` in ecosystem.yaml to "
                                    "one this host has (`ecoctl doctor` lists the images)")

    def test_status_after_a_failed_first_up_says_what_failed(self, eco):
        done = ecoctl(eco["root"], "status", timeout=120)
        assert done.returncode == 0, done.stderr
        assert "Failed: postgres (the detail column says why)" in done.stdout, done.stdout
        assert "The stack is not up." in done.stdout and "`ecoctl up` starts it" not in done.stdout
        rows = {row["name"]: row for row in json.loads(ecoctl(eco["root"], "status", "--json").stdout)["components"]}
        assert rows["postgres"]["state"] == "failed" and "No such image" in rows["postgres"]["detail"], rows

    def test_a_missing_authentik_image_fails_at_once_naming_the_service(self, eco):
        configure(eco["root"], lambda document: document["images"].update(postgres=TEST_IMAGES["postgres"]))
        done = ecoctl(eco["root"], "up", timeout=600)
        assert done.returncode == 1
        line = error_line(done)
        assert line.startswith("error: swarm cannot start authentik-") and \
            f"No such image: {AUTHENTIK_IMAGE}: `docker pull` it" in line, line
        assert "not ready after" not in done.stderr

    def test_an_external_authentik_prunes_the_stacks_own_and_up_is_quiet(self, eco, authentik_on_bridge):
        root = eco["root"]
        assert {"authentik-server", "authentik-worker"} <= services_of(eco["name"])
        configure(root, lambda document: document["core"]["authentik"].update(url=authentik_on_bridge.base_url))
        workspace = Workspace(root)
        workspace.env.set("AUTHENTIK_TOKEN", authentik_on_bridge.token)
        workspace.env.save()
        done = ecoctl(root, "up", timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        output = done.stdout + done.stderr
        assert "Since --detach" not in output and "Step 1/" not in output and "Successfully built" not in output
        assert "$ docker build services/portfolio" in (root / ".ecoctl" / "logs" / "swarm-build.log").read_text()
        assert "docker stack deploy" in (root / ".ecoctl" / "logs" / "swarm-deploy.log").read_text()
        assert not {"authentik-server", "authentik-worker"} & services_of(eco["name"])
        status = ecoctl(root, "status", timeout=120)
        assert "Failed" not in status.stdout and "No drift." in status.stdout, status.stdout
        assert "authentik-server" not in status.stdout
        assert ecoctl(root, "plan", "--detailed-exitcode", timeout=120).returncode == 0
