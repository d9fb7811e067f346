"""The portfolio web app in a real browser under the docker runtime: the same flow as the local
runtime's (tests/browser/test_portfolio_web.py; the shared pieces are in portfolio_flow.py and
conftest.py) against a stack in containers, built from the test images (tests/docker/setup.sh; the
web app's image in its Node stage from `ecoctl-test/node:18`): the edge (Caddy) in front of the web
app, the portfolio service and the development sign-in, which runs in its own container instead of
Authentik (`core.signin.in_containers: true`, development only): sign in as a development user →
create a portfolio → add a holding → see the valuation → sign out. Every published port is a free one.

Screenshots: `tests/artifacts/browser/docker-*.png`."""

from __future__ import annotations

import json
import re
import secrets
import subprocess

import pytest

from tests.browser.portfolio_flow import assert_accessible, shot, sign_in_create_add_value_sign_out
from tests.helpers import DOCKER_TEST_IMAGES, docker_engine_problem, free_port, run_ecoctl, use_free_edge_ports

NODE_IMAGE = "ecoctl-test/node:18"


def engine_problem() -> str | None:
    problem = docker_engine_problem()
    if problem is None and subprocess.run(["docker", "image", "inspect", NODE_IMAGE], capture_output=True).returncode:
        return f"test image missing ({NODE_IMAGE}): run tests/docker/setup.sh"
    return problem


ENGINE_PROBLEM = engine_problem()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(ENGINE_PROBLEM is not None, reason=ENGINE_PROBLEM or "")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from ecoctl.workspace import Workspace

    base = tmp_path_factory.mktemp("browser-docker")
    assert run_ecoctl("init", "demo", "--runtime", "docker", cwd=base).returncode == 0  # with the web app
    root = base / "demo"
    name = f"bw{secrets.token_hex(3)}"

    def configure(document):
        document["name"] = name
        document["images"] = {**DOCKER_TEST_IMAGES, "node": NODE_IMAGE}
        core = document["core"]
        core["signin"]["in_containers"] = True  # the development sign-in instead of Authentik
        core["authentik"]["port"] = free_port()
        core["postgres"]["port"] = free_port()
        core["redis"]["port"] = free_port()
        core["monitoring"]["prometheus_port"] = free_port()
        core["monitoring"]["grafana_port"] = free_port()
        for service in ("portfolio", "web"):
            document["services"][service]["port"] = free_port()
        use_free_edge_ports(document)

    Workspace(root).ecosystem_file.update(configure)
    (root / "compose.yaml").unlink()  # compose.yaml bakes in the name and ports at init: render it again
    assert run_ecoctl("init", "--force", ".", cwd=root).returncode == 0
    compose = (root / "compose.yaml").read_text()
    assert "  signin:\n" in compose and "authentik-server:" not in compose
    try:
        up = run_ecoctl("up", "--json", cwd=root, timeout=1500)
        assert up.returncode == 0, (up.stdout[-3000:], up.stderr[-3000:])
        result = json.loads(up.stdout)
        assert result["runtime"] == "docker"
        running = subprocess.run(["docker", "ps", "--filter", f"name=^{name}-signin$", "--format", "{{.Image}}"],
                                 capture_output=True, text=True).stdout.split()
        assert running == [DOCKER_TEST_IMAGES["python"]]  # the sign-in runs in its own container
        web = {service["name"]: service for service in result["services"]}["web"]
        assert web["health"] == "healthy", result["services"]
        password = run_ecoctl("secrets", "password", "dev", cwd=root)
        assert password.returncode == 0, password.stderr
        exported = run_ecoctl("ca", "export", cwd=root)
        assert exported.returncode == 0, exported.stderr
        ca = base / "ecosystem-root.pem"
        ca.write_text(exported.stdout)
        site, issuer = result["endpoints"]["edge"].rstrip("/"), result["endpoints"]["sign-in"].rstrip("/")
        assert site.startswith("https://") and issuer.startswith("https://"), result["endpoints"]
        yield {"root": root, "site": site, "issuer": issuer, "password": password.stdout.strip(),
               "api": f"{site}/api/portfolio", "ca": str(ca), "prefix": "docker-"}
    finally:
        run_ecoctl("down", "--volumes", "--yes", cwd=root, timeout=300)
        images = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", f"{name}/*"],
                                capture_output=True, text=True).stdout.split()
        for image in images:  # ours only; untagged, the layers stay as build cache for the next run
            subprocess.run(["docker", "image", "rm", "--no-prune", image], capture_output=True)


def test_a_protected_route_sends_a_signed_out_visitor_to_the_development_sign_in(stack, page, axe):
    page.goto(f"{stack['site']}/portfolios")
    page.wait_for_url(re.compile(re.escape(stack["issuer"]) + r"/application/o/authorize/.*"))
    assert "code_challenge_method=S256" in page.url
    assert page.get_by_text("Development sign-in").is_visible()
    shot(stack, page, "01-sign-in")
    assert_accessible(page, axe, "sign-in page")


def test_sign_in_create_a_portfolio_add_a_holding_see_the_valuation_sign_out(stack, page, axe):
    sign_in_create_add_value_sign_out(stack, page, axe)


def test_restarting_the_sign_in_renders_its_files_again_from_env(stack):
    """A development user's new password in .env reaches the container at `ecoctl restart signin`."""
    from ecoctl.signin import password_key
    from ecoctl.workspace import Workspace

    root = stack["root"]
    assert run_ecoctl("token", "portfolio", "--user", "dev", cwd=root).returncode == 0
    workspace = Workspace(root)
    workspace.env.set(password_key("dev"), f"changed-{secrets.token_hex(8)}", replace=True)
    workspace.env.save()
    refused = run_ecoctl("token", "portfolio", "--user", "dev", cwd=root)
    assert refused.returncode != 0  # the running sign-in still knows the old password
    restarted = run_ecoctl("restart", "signin", cwd=root, timeout=300)
    assert restarted.returncode == 0, restarted.stderr
    token = run_ecoctl("token", "portfolio", "--user", "dev", cwd=root)
    assert token.returncode == 0 and token.stdout.count(".") == 2, token.stderr
