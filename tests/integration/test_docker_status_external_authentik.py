"""The docker runtime's `status` with an external Authentik (`core.authentik.url`): shown as
external and asked whether it is ready (as the local runtime does), never "absent/unknown".

No Docker engine is needed: the stack is not started, so the engine would list no containers
(`containers()` answers that); the Authentik is the test double over real HTTP."""

from __future__ import annotations

from ecoctl.runtimes.docker import DockerRuntime
from ecoctl.workspace import Workspace
from tests.authentik_fixtures import authentik_double, authentik_double_server, closed_url, write_workspace  # noqa: F401


class NotStarted(DockerRuntime):
    def containers(self, projects=None) -> dict:
        return {}


def rows(root) -> dict:
    return {row.name: row for row in NotStarted(Workspace(root)).status()}


def test_a_ready_external_authentik_is_external_and_healthy(tmp_path, authentik_double):
    write_workspace(tmp_path, authentik_double.base_url, authentik_double.token, {})
    components = NotStarted(Workspace(tmp_path)).status()
    names = [row.name for row in components]
    assert "authentik-server" not in names and "authentik-worker" not in names
    assert names.index("authentik") == names.index("redis") + 1
    row = components[names.index("authentik")]
    assert (row.state, row.health, row.url) == ("external", "healthy", authentik_double.base_url)
    assert row.detail == "external: not run by ecoctl; answers /-/health/ready/"
    assert row.to_json()["state"] == "external"


def test_an_external_authentik_that_is_not_ready_is_unhealthy_with_the_fix(tmp_path, authentik_double):
    write_workspace(tmp_path, authentik_double.base_url, authentik_double.token, {})
    authentik_double.ready = False  # answers 503 while it boots
    row = rows(tmp_path)["authentik"]
    assert (row.state, row.health) == ("external", "unhealthy")
    assert row.detail == ("external: not run by ecoctl; does not answer /-/health/ready/: "
                          "check core.authentik.url")
    authentik_double.ready = True
    assert rows(tmp_path)["authentik"].health == "healthy"


def test_an_external_authentik_nobody_answers_at_is_unhealthy(tmp_path, closed_url):
    write_workspace(tmp_path, closed_url, "token", {})
    row = rows(tmp_path)["authentik"]
    assert (row.state, row.health, row.url) == ("external", "unhealthy", closed_url)
    assert "check core.authentik.url" in row.detail


def test_the_stacks_own_authentik_stays_its_containers(tmp_path):
    (tmp_path / "ecosystem.yaml").write_text("name: demo\nruntime: docker\nservices: {}\n")
    found = rows(tmp_path)
    assert "authentik" not in found
    assert (found["authentik-server"].state, found["authentik-worker"].state) == ("absent", "absent")
