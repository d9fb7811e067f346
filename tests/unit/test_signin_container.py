"""The development sign-in in a container runtime (`core.signin.in_containers`, development only):
what the ecosystem runs instead of Authentik, its compose entry (a plain Python image, its files
mounted, its packages pinned to ecoctl's), the files the runtime writes for it, what services and
the edge are told, and that the issuer listens beyond loopback only inside a container."""

from __future__ import annotations

import json
import stat
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import pytest

from ecoctl import compose_core, components, components_edge, contract, signin
from ecoctl.component_kinds import Place
from ecoctl.issuer import __main__ as issuer_main
from ecoctl.local_auth import ensure_signing_key
from ecoctl.model import Ecosystem


def model(runtime: str = "docker", in_containers: bool = True, url: str = "") -> Ecosystem:
    return Ecosystem.from_data({
        "name": "demo", "runtime": runtime,
        "core": {"authentik": {"port": 9100, "prefix": "demo-", **({"url": url} if url else {})},
                 "signin": {"users": ["dev"], "in_containers": in_containers}},
        "services": {"portfolio": {"port": 8000, "template": "portfolio"},
                     "web": {"port": 3000, "client": "public", "calls": ["portfolio"]}}})


@pytest.mark.parametrize("runtime", ["docker", "swarm"])
def test_it_runs_instead_of_authentik_in_a_container_runtime(runtime):
    ecosystem = model(runtime)
    assert ecosystem.signin_runs and not ecosystem.authentik_used and not ecosystem.authentik_in_stack
    names = [component.name for component in components.enabled(ecosystem)]
    assert "signin" in names and "authentik-server" not in names and "authentik-worker" not in names
    keys = contract.secret_keys(ecosystem)
    assert signin.SESSION_SECRET in keys and signin.password_key("dev") in keys
    assert not any(key.startswith("AUTHENTIK_") for key in keys)


def test_without_the_setting_or_with_an_external_authentik_it_does_not():
    assert model(in_containers=False).authentik_in_stack and not model(in_containers=False).signin_runs
    external = model(url="https://auth.example.com")
    assert external.authentik_used and not external.signin_runs and not external.authentik_in_stack
    local = model("local", in_containers=False)
    assert local.signin_runs and local.authentik_in_stack  # the local runtime's, as before


def test_its_compose_entry():
    ecosystem = model()
    entry = compose_core.entry(ecosystem, components.SIGNIN)
    assert entry["image"] == ecosystem.image("python")
    assert entry["ports"] == ["127.0.0.1:9100:9000"]  # on the host's loopback only
    assert entry["volumes"] == ["./.ecoctl/signin:/etc/ecoctl-signin:ro", "signin_packages:/opt/signin"]
    pins = entry["environment"]["SIGNIN_PACKAGES"].split()
    assert pins == [f"{name}=={version(name)}" for name in ("authlib", "flask", "werkzeug", "joserfc")]
    script = entry["command"][2]
    assert entry["command"][:2] == ["sh", "-c"]
    assert "exec python -m ecoctl.issuer /etc/ecoctl-signin/signin.json" in script
    assert "$SIGNIN" not in script.replace("$$SIGNIN", "")  # compose would interpolate a single `$`
    assert "/-/health/ready/" in entry["healthcheck"]["test"][-1]
    text = compose_core.text(ecosystem)
    assert "  signin:\n" in text.services and "development only" in text.services
    assert "authentik-server:" not in text.services and "signin_packages:" in text.volumes
    authentik = compose_core.text(model(in_containers=False))
    assert "  signin:\n" not in authentik.services
    assert "# signin is left out: the stack runs Authentik" in authentik.services


def test_services_and_the_edge_reach_it_by_name():
    ecosystem = model()
    environment = contract.service_environment(ecosystem, "portfolio", "compose", {})
    assert environment["OIDC_JWKS_URL"] == "http://signin:9000/application/o/demo-portfolio/jwks/"
    assert environment["OIDC_ISSUER"] == "http://127.0.0.1:9100/application/o/demo-portfolio/"
    assert "OIDC_ACCEPTED_CLIENTS" not in environment  # the sign-in issues a web app's token for the API
    swarm = contract.service_environment(model("swarm"), "portfolio", "swarm", {})
    assert swarm["OIDC_JWKS_URL"] == "http://signin:9000/application/o/demo-portfolio/jwks/"
    caddyfile = components_edge.container_caddyfile(ecosystem, components.enabled(ecosystem))
    assert "reverse_proxy signin:9000" in caddyfile


def test_the_files_written_for_its_container(tmp_path):
    ensure_signing_key(SimpleNamespace(state_dir=tmp_path))
    ecosystem = model()
    env = {signin.SESSION_SECRET: "session", signin.password_key("dev"): "dev-pass",
           signin.client_secret_key("portfolio"): "portfolio-secret"}
    folder = tmp_path / "signin"
    place = Place(binary="", folder=folder, data=folder, config=folder / "signin.json", port=9000, secrets={},
                  ecosystem=ecosystem, env=env, state_dir=tmp_path)
    files = signin.container_files(place)
    config = json.loads(files["signin.json"])
    assert (config["host"], config["port"], config["base_url"]) == ("0.0.0.0", 9000, "http://127.0.0.1:9100")
    assert set(config["users"]) == {"dev"} and "dev-pass" not in files["signin.json"]
    for module in ("__main__", "server", "oauth", "store", "page"):
        assert f"python/ecoctl/issuer/{module}.py" in files
    assert files["python/ecoctl/issuer/__main__.py"] == Path(issuer_main.__file__).read_text()
    assert "import" not in files["python/ecoctl/__init__.py"]  # no other part of ecoctl in its container


def test_the_runtime_writes_them_private_and_says_when_they_changed(tmp_path):
    from ecoctl.commands.init import init_ecosystem
    from ecoctl.runtimes.docker import DockerRuntime
    from ecoctl.workspace import Workspace

    root = tmp_path / "eco"
    init_ecosystem(root, runtime="docker", without=("web",))
    Workspace(root).ecosystem_file.update(lambda doc: doc["core"]["signin"].__setitem__("in_containers", True))
    runtime = DockerRuntime.__new__(DockerRuntime)  # no engine needed to write files
    runtime.workspace, runtime.progress = Workspace(root), (lambda message: None)
    assert "signin" in runtime.write_container_configs()
    folder = root / ".ecoctl" / "signin"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "signin.json").stat().st_mode) == 0o600
    assert json.loads((folder / "signin.json").read_text())["host"] == "0.0.0.0"
    assert "signin" not in runtime.write_container_configs()  # unchanged: not restarted


def test_the_issuer_listens_beyond_loopback_only_in_a_container(tmp_path, monkeypatch, capsys):
    config = tmp_path / "signin.json"
    config.write_text(json.dumps({"host": "0.0.0.0", "port": 1, "base_url": "x", "clients": {}, "users": {}}))
    monkeypatch.setattr(issuer_main, "CONTAINER_MARKERS", (str(tmp_path / "no-such-marker"),))
    assert issuer_main.main([str(config)]) == 2
    assert "loopback only, not 0.0.0.0" in capsys.readouterr().err
    config.write_text(json.dumps({"host": "10.0.0.1", "port": 1, "base_url": "x", "clients": {}, "users": {}}))
    monkeypatch.setattr(issuer_main, "CONTAINER_MARKERS", (str(config),))  # "in a container": still not any address
    assert issuer_main.main([str(config)]) == 2


def test_its_swarm_stack_service(tmp_path):
    """swarm: its files by their absolute path, pinned to the node holding them and its volume; no secret."""
    from ecoctl.commands.init import init_ecosystem
    from ecoctl.runtimes.swarm_stack import render
    from ecoctl.workspace import Workspace

    root = tmp_path / "eco"
    init_ecosystem(root, runtime="swarm", without=("web",))
    Workspace(root).ecosystem_file.update(lambda doc: doc["core"]["signin"].__setitem__("in_containers", True))
    (root / "compose.yaml").unlink()
    init_ecosystem(root, force=True)
    document, secrets = render(Workspace(root), {"postgres", "signin", "portfolio"},
                               {"portfolio": "eco/portfolio:abc"}, "node-1")
    assert "authentik-server" not in document["services"]
    entry = document["services"]["signin"]
    assert entry["volumes"] == [f"{(root / '.ecoctl/signin').resolve()}:/etc/ecoctl-signin:ro",
                                "signin_packages:/opt/signin"]
    assert entry["deploy"]["placement"] == {"constraints": ["node.hostname == node-1"]}
    assert "exec python -m ecoctl.issuer" in entry["command"][2] and "secrets" not in entry
    portfolio = document["services"]["portfolio"]["environment"]
    assert portfolio["OIDC_JWKS_URL"] == "http://signin:9000/application/o/eco-portfolio/jwks/"
