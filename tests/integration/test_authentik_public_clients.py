"""Web apps in Authentik: each a public OAuth2 provider + application, registered and drift-checked
like the services' confidential ones, every request checked by the double against the vendor's
`authentik-client` models."""

from __future__ import annotations

from ecoctl.workspace import Workspace
from tests.authentik_fixtures import authentik_double, authentik_double_server, write_workspace  # noqa: F401
from tests.integration.test_authentik_scenarios import plan, provision

WEB = {"port": 3000, "client": "public", "calls": ["portfolio"],
       "redirect_uris": ["http://127.0.0.1:3000/callback"],
       "post_logout_redirect_uris": ["http://127.0.0.1:3000/", "http://localhost:3000/"]}


def workspace_with_a_web_app(tmp_path, double) -> Workspace:
    return write_workspace(tmp_path / "eco", double.base_url, double.token,
                           {"portfolio": {"port": 8000}, "shop-web": dict(WEB)})


def uris(provider: dict) -> list[tuple[str, str]]:
    return [(uri["url"], uri.get("redirect_uri_type", "authorization")) for uri in provider["redirect_uris"]]


def test_a_web_app_is_a_public_provider_with_its_logout_uris(tmp_path, authentik_double):
    authentik_double.version = "2026.5.0"
    workspace = workspace_with_a_web_app(tmp_path, authentik_double)
    assert "+ create oauth2 provider demo/shop-web-provider (client_id shop-web, public (PKCE), redirect " \
           "http://127.0.0.1:3000/callback)" in plan(workspace.root)
    provision(workspace)

    web, api = authentik_double.provider("shop-web"), authentik_double.provider("portfolio")
    assert (web["client_type"], api["client_type"]) == ("public", "confidential")
    assert uris(web) == [("http://127.0.0.1:3000/callback", "authorization"), ("http://127.0.0.1:3000/", "logout"),
                         ("http://localhost:3000/", "logout")]
    created = next(write for write in authentik_double.writes()
                   if write.method == "POST" and write.body.get("client_id") == "shop-web")
    assert "client_secret" not in created.body  # no secret of ours: the browser holds none
    assert authentik_double.state.applications["shop-web"]["provider"] == web["pk"]
    assert "SHOP_WEB_OIDC_CLIENT_SECRET" not in Workspace(workspace.root).env.values
    assert plan(workspace.root) == []


def test_a_web_app_provider_drifting_is_set_back(tmp_path, authentik_double):
    authentik_double.version = "2026.5.0"
    workspace = workspace_with_a_web_app(tmp_path, authentik_double)
    provision(workspace)
    stored = authentik_double.provider("shop-web")
    stored["client_type"] = "confidential"
    stored["redirect_uris"] = [uri for uri in stored["redirect_uris"] if uri["url"] != "http://localhost:3000/"]

    assert plan(workspace.root) == ["~ update oauth2 provider demo/shop-web-provider "
                                    "(client_type; post-logout redirect_uris +http://localhost:3000/)"]
    provision(Workspace(workspace.root))
    patch = authentik_double.writes()[-1]
    assert patch.method == "PATCH" and set(patch.body) == {"client_type", "redirect_uris"}
    assert authentik_double.provider("shop-web")["client_type"] == "public"
    assert plan(workspace.root) == []

    # a post-logout URI the spec no longer names is removed; the authorization ones stay
    workspace.ecosystem_file.update(
        lambda doc: doc["services"]["shop-web"].__setitem__("post_logout_redirect_uris", ["http://127.0.0.1:3000/"]))
    assert plan(workspace.root) == ["~ update oauth2 provider demo/shop-web-provider "
                                    "(post-logout redirect_uris -http://localhost:3000/)"]
    provision(Workspace(workspace.root))
    assert uris(authentik_double.provider("shop-web")) == [("http://127.0.0.1:3000/callback", "authorization"),
                                                            ("http://127.0.0.1:3000/", "logout")]


def test_before_2026_5_no_logout_uris_are_sent(tmp_path, authentik_double):
    """Authentik 2025.12 has no `redirect_uri_type`: the provider is public with its redirect URIs only."""
    assert authentik_double.version == "2025.12.4"
    workspace = workspace_with_a_web_app(tmp_path, authentik_double)
    provision(workspace)
    web = authentik_double.provider("shop-web")
    assert web["client_type"] == "public"
    assert uris(web) == [("http://127.0.0.1:3000/callback", "authorization")]
    assert all("redirect_uri_type" not in uri for write in authentik_double.writes() if write.body
               for uri in write.body.get("redirect_uris") or [])
    assert plan(workspace.root) == []


def test_a_service_becoming_a_web_app_becomes_public(tmp_path, authentik_double):
    workspace = write_workspace(tmp_path / "eco", authentik_double.base_url, authentik_double.token,
                                {"portfolio": {"port": 8000}, "shop-web": {"port": 3000}})
    provision(workspace)
    assert authentik_double.provider("shop-web")["client_type"] == "confidential"
    workspace.ecosystem_file.update(lambda doc: doc["services"]["shop-web"].update(client="public"))
    changes = plan(workspace.root)
    assert changes == ["~ update oauth2 provider demo/shop-web-provider (client_type; redirect_uris "
                       "+http://localhost:3000/callback)"]  # /callback on each of its origins
    provision(Workspace(workspace.root))
    assert authentik_double.provider("shop-web")["client_type"] == "public"
    assert plan(workspace.root) == []


def test_ecoctl_token_goes_through_authentiks_token_endpoint(tmp_path, authentik_double):
    """`ecoctl token SERVICE` with Authentik: client_credentials at its token endpoint, as with the
    local sign-in; a web app has no secret to ask with."""
    import pytest

    from ecoctl.commands.tokens import token_for
    from ecoctl.errors import UsageError
    from tests.authentik_fixtures import Target
    from tests.integration.test_authentik_scenarios import verify

    workspace = workspace_with_a_web_app(tmp_path, authentik_double)
    provision(workspace)
    token = token_for(Workspace(workspace.root), "portfolio")
    target = Target(authentik_double.base_url, authentik_double.token, double=authentik_double)
    assert verify(target, "portfolio", token)["aud"] == "portfolio"
    with pytest.raises(UsageError, match="shop-web is a web app"):
        token_for(Workspace(workspace.root), "shop-web")
    with pytest.raises(UsageError, match="--user signs a development user in through the local runtime"):
        token_for(Workspace(workspace.root), "portfolio", user="dev")
