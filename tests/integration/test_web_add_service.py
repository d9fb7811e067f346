"""`ecoctl add-service NAME --template react-vite --calls API`: a web app's public client and the
APIs it calls, recorded in ecosystem.yaml; the wrong uses are one line each (exit 2). Files only
(--no-apply): no server is needed."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from tests.helpers import run_ecoctl


@pytest.fixture
def eco(tmp_path):
    assert run_ecoctl("init", "demo", "--runtime", "local", "--without", "web", cwd=tmp_path).returncode == 0
    return tmp_path / "demo"


def services(root):
    return YAML(typ="safe").load((root / "ecosystem.yaml").read_text())["services"]


def test_a_web_app_is_a_public_client_calling_its_api(eco):
    added = run_ecoctl("add-service", "loyalty", "--port", "8091", "--no-apply", cwd=eco)
    assert added.returncode == 0, added.stderr
    web = run_ecoctl("add-service", "loyalty-web", "--template", "react-vite", "--calls", "loyalty",
                     "--port", "3005", "--no-apply", cwd=eco)
    assert web.returncode == 0, web.stderr
    spec = services(eco)["loyalty-web"]
    assert (spec["client"], spec["calls"], spec["port"]) == ("public", ["loyalty"], 3005)
    # a web app the edge does not serve at `/` is served on its own port (its pages load /assets/
    # from the root of their origin): it signs in there, edge or not
    assert spec["redirect_uris"] == ["http://127.0.0.1:3005/callback"]
    # a service's callback is under its API path on the edge's HTTPS origin
    assert services(eco)["loyalty"]["redirect_uris"] == ["https://127.0.0.1:8443/api/loyalty/callback"]
    assert (eco / "services" / "loyalty-web" / "serve.py").is_file()
    env = run_ecoctl("env", "loyalty-web", "--format", "json", cwd=eco)
    assert env.returncode == 0, env.stderr
    assert '"API_URLS": "loyalty=http://127.0.0.1:8091"' in env.stdout
    assert "OIDC_CLIENT_SECRET" not in env.stdout  # a public client has none
    assert "client" not in services(eco)["loyalty"]  # a service stays confidential


def test_the_portfolio_web_app_calls_portfolio_by_default(eco):
    web = run_ecoctl("add-service", "web", "--template", "portfolio-web", "--no-apply", cwd=eco)
    assert web.returncode == 0, web.stderr
    spec = services(eco)["web"]
    assert (spec["client"], spec["calls"], spec["port"]) == ("public", ["portfolio"], 3000)
    # the web app the edge serves at `/` (core.edge.web) signs in on the edge's HTTPS origin
    assert spec["redirect_uris"] == ["https://127.0.0.1:8443/callback"]


def test_with_the_edge_off_every_redirect_uri_is_on_the_services_own_port(eco):
    text = (eco / "ecosystem.yaml").read_text()
    edge_on = "    enabled: true         # the web app at /"
    assert edge_on in text
    (eco / "ecosystem.yaml").write_text(text.replace(edge_on, "    enabled: false        # the web app at /"))
    for args in (["web", "--template", "portfolio-web"], ["loyalty", "--port", "8091"]):
        added = run_ecoctl("add-service", *args, "--no-apply", cwd=eco)
        assert added.returncode == 0, added.stderr
    assert services(eco)["web"]["redirect_uris"] == ["http://127.0.0.1:3000/callback"]
    assert services(eco)["loyalty"]["redirect_uris"] == ["http://127.0.0.1:8091/callback"]


@pytest.mark.parametrize("args, message", [
    (["--template", "python-fastapi", "--calls", "portfolio"],
     "--calls: template python-fastapi makes a service, not a web app"),
    (["--template", "react-vite", "--calls", "nothing"], "--calls nothing: not a service with an API in ecosystem.yaml"),
    (["--template", "react-vite", "--calls", "shop-web"], "--calls shop-web: not a service with an API"),
])
def test_wrong_calls_are_one_line(eco, args, message):
    refused = run_ecoctl("add-service", "shop-web", *args, "--no-apply", cwd=eco)
    assert refused.returncode == 2, refused.stderr
    assert message in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "shop-web" not in services(eco)
