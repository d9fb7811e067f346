"""The edge's Caddyfile with no server: routes (the web app at /, each API under /api/<service>/,
the sign-in on its own origin), TLS 1.2+, headers, the redirect; Caddy's own parser accepts it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ecoctl import components, components_edge
from ecoctl.component_kinds import Place
from ecoctl.workspace import Workspace


def make(tmp_path, **edge) -> Workspace:
    from ecoctl.commands.init import init_ecosystem

    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local")

    def change(doc):
        doc["core"]["edge"].update(edge)
        doc["services"]["web"] = {"port": 3100, "template": "python-fastapi"}
        doc["services"]["loyalty"] = {"port": 8101}
        doc["services"]["far"] = {"port": 8102, "pattern": "external", "host": "10.0.2.50"}

    Workspace(root).ecosystem_file.update(change)
    return Workspace(root)


def caddyfile(workspace: Workspace, tmp_path: Path) -> str:
    place = Place(binary="caddy", folder=tmp_path, data=tmp_path / "data", config=tmp_path / "Caddyfile",
                  port=8443, secrets={}, ecosystem=workspace.ecosystem,
                  tls=(tmp_path / "edge.pem", tmp_path / "edge-key.pem"))
    return components.EDGE.local.config(place)


def blocks(text: str) -> dict[str, str]:
    """Each top-level block by its address line."""
    found, name, body = {}, None, []
    for line in text.splitlines():
        if line.endswith("{") and not line.startswith(("\t", "#")):
            name, body = line[:-1].strip(), []
        elif line == "}" and name is not None:
            found[name], name = "\n".join(body), None
        elif name is not None:
            body.append(line)
    return found


def test_the_routes_the_headers_and_the_redirect(tmp_path):
    workspace = make(tmp_path)
    text = caddyfile(workspace, tmp_path)
    found = blocks(text)
    portfolio = workspace.ecosystem.services["portfolio"].port
    main = found["https://:8443"]
    assert f"handle_path /api/portfolio/* {{\n\t\treverse_proxy 127.0.0.1:{portfolio}" in main
    assert "handle_path /api/loyalty/* {\n\t\treverse_proxy 127.0.0.1:8101" in main
    assert "/api/far/" not in main  # external: not behind this edge
    assert main.split("\thandle {", 1)[1].strip().startswith("reverse_proxy 127.0.0.1:3100")  # the web app at /
    sign_in = workspace.ecosystem.core.authentik.port  # the development sign-in, on its own origin
    assert f"reverse_proxy 127.0.0.1:{sign_in}" in found["https://:9443"]
    assert found["http://:8480"].strip().endswith("redir https://{host}:8443{uri} 308")
    shared = found["(edge)"]
    assert "bind 127.0.0.1" in shared and "protocols tls1.2 tls1.3" in shared
    assert f"tls {tmp_path / 'edge.pem'} {tmp_path / 'edge-key.pem'}" in shared
    assert 'Strict-Transport-Security "max-age=31536000"' in shared and "-Server" in shared
    assert "admin off" in found[""]  # no admin API a local user could reach


def test_without_a_web_app_and_with_an_address(tmp_path):
    workspace = make(tmp_path, web="nothing")
    workspace.ecosystem_file.update(lambda doc: doc["core"].__setitem__("address", "10.0.1.50"))
    text = caddyfile(Workspace(workspace.root), tmp_path)
    assert components_edge.NO_WEB_APP in text
    assert "bind 127.0.0.1 10.0.1.50" in text


def test_a_public_domain_uses_acme(tmp_path):
    text = caddyfile(make(tmp_path, domain="eco.example.com"), tmp_path)
    found = blocks(text)
    assert {"https://eco.example.com", "https://auth.eco.example.com", "http://:80"} <= set(found)
    assert "tls " not in found["(edge)"].replace("\ttls {", "")  # no files: ACME
    assert "https_port 443" in found[""] and "auto_https disable_redirects" in found[""]


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed (tests/run.sh installs it)")
@pytest.mark.parametrize("edge", [{}, {"domain": "eco.example.com"}])
def test_caddy_accepts_it(tmp_path, edge):
    path = tmp_path / "Caddyfile"
    path.write_text(caddyfile(make(tmp_path, **edge), tmp_path))
    adapted = subprocess.run(["caddy", "adapt", "--config", str(path), "--adapter", "caddyfile"],
                             capture_output=True, text=True)
    assert adapted.returncode == 0, adapted.stderr
    assert '"warn"' not in adapted.stderr, adapted.stderr
    broken = tmp_path / "Broken"
    broken.write_text(path.read_text().replace("reverse_proxy", "reverse_proxi", 1))
    assert subprocess.run(["caddy", "adapt", "--config", str(broken)], capture_output=True).returncode != 0


def test_redirect_uris_use_the_edge_origin(tmp_path):
    from ecoctl import contract

    ecosystem = make(tmp_path).ecosystem
    assert contract.redirect_uri(ecosystem, "web", 3100) == "https://127.0.0.1:8443/callback"
    assert contract.redirect_uri(ecosystem, "loyalty", 8101) == "https://127.0.0.1:8443/api/loyalty/callback"
    assert contract.redirect_uri(ecosystem, "far", 8102, "external", "10.0.2.50") == "http://10.0.2.50:8102/callback"
    # a web app not at `/` is served on its own port only (its pages load /assets/ from their origin's root)
    assert contract.redirect_uri(ecosystem, "web", 3100, public=True) == "https://127.0.0.1:8443/callback"
    assert contract.redirect_uri(ecosystem, "shop-web", 3005, public=True) == "http://127.0.0.1:3005/callback"
    off = make(tmp_path / "off", enabled=False).ecosystem
    assert contract.redirect_uri(off, "loyalty", 8101) == "http://127.0.0.1:8101/callback"
    assert off.sign_in_origin == off.authentik_url  # no edge: tokens' issuer as before


def test_enabled_false_turns_the_edge_off_in_every_runtime(tmp_path):
    from ecoctl import compose_core
    from ecoctl.commands.init import init_ecosystem

    local = make(tmp_path, enabled=False).ecosystem
    assert "edge" not in [component.name for component in components.enabled(local)]
    assert 8443 not in local.core_ports
    root = tmp_path / "docker"
    init_ecosystem(root, runtime="docker")
    Workspace(root).ecosystem_file.update(lambda doc: doc["core"]["edge"].__setitem__("enabled", False))
    text = compose_core.text(Workspace(root).ecosystem).services
    assert "  edge:\n" not in text and "# edge is left out: core.edge.enabled is not true" in text


def test_the_web_app_at_the_edge_may_sign_in_from_its_origin(tmp_path):
    from ecoctl import contract, signin

    workspace = make(tmp_path)
    workspace.ecosystem_file.update(lambda doc: doc["services"]["web"].__setitem__("client", "public"))
    ecosystem = Workspace(workspace.root).ecosystem
    assert ecosystem.origins("web")[-1] == "https://127.0.0.1:8443/"
    web = signin.clients(ecosystem)[contract.client_id(ecosystem, "web")]
    assert "https://127.0.0.1:8443/callback" in web["redirect_uris"] and "https://127.0.0.1:8443/" in web["post_logout_redirect_uris"]
    assert "https://127.0.0.1:8443/" not in ecosystem.origins("loyalty")  # not the web app at /


def test_a_web_app_is_no_api_at_the_edge(tmp_path):
    """A web app (`client: public`) gets no `/api/<name>/` route: its pages load `/assets/` and
    `/config.json` from the root of their origin. The one at `/` is served there; another stays on
    its own port, where its redirect URIs are."""
    from ecoctl import contract

    workspace = make(tmp_path)

    def web_apps(doc):
        doc["services"]["web"].update({"client": "public", "calls": ["loyalty"]})
        doc["services"]["shop-web"] = {"port": 3105, "client": "public", "calls": ["loyalty"]}

    workspace.ecosystem_file.update(web_apps)
    ecosystem = Workspace(workspace.root).ecosystem
    main = blocks(caddyfile(Workspace(workspace.root), tmp_path))["https://:8443"]
    assert "/api/shop-web/" not in main and ":3105" not in main  # not behind the edge at all
    assert "/api/web/" not in main  # the web app at / is served there only
    assert main.split("\thandle {", 1)[1].strip().startswith("reverse_proxy 127.0.0.1:3100")
    assert "handle_path /api/loyalty/* {\n\t\treverse_proxy 127.0.0.1:8101" in main  # the APIs keep theirs
    assert contract.redirect_uri(ecosystem, "shop-web", 3105, public=True) == "http://127.0.0.1:3105/callback"
