"""The Authentik provider's scenarios, against the test double (and, re-used by
tests/test_authentik_live.py, against a real Authentik)."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from ecoctl.clients.authentik import AuthentikClient
from ecoctl.errors import EcoctlError, Unreachable
from ecoctl.plan import Options
from tests.helpers import converge_providers
from ecoctl.workspace import Workspace
from tests.authentik_double import FaultProxy
from tests.authentik_fixtures import (FAST, Target, authentik_double, authentik_double_server,  # noqa: F401
                                      authentik_target, closed_url, provider_for, write_workspace)

MEASURED_PROVIDER_KEYS = {"name", "client_type", "client_id", "authorization_flow", "invalidation_flow",
                          "redirect_uris", "signing_key", "property_mappings", "client_secret", "sub_mode"}


def make(tmp_path, target: Target, token: str | None = None, **extra_spec) -> tuple[Workspace, str, str]:
    loyalty, orders = f"{target.prefix}loyalty", f"{target.prefix}orders"
    target.services |= {loyalty, orders}
    services = {loyalty: {"port": 8001, **extra_spec},
                orders: {"port": 8002, "redirect_uris": ["http://localhost:8002/auth/callback",
                                                         "http://orders.example.test/auth/callback"]}}
    name = f"eco-{target.prefix}demo" if target.prefix else "demo"
    return write_workspace(tmp_path / "eco", target.base_url, token or target.token, services, name), loyalty, orders


def provision(workspace: Workspace, **options) -> list[str]:
    provider = provider_for(workspace, **options)
    try:
        return [str(change) for change in converge_providers([provider]).changes]
    finally:
        provider.close()


def plan(root) -> list[str]:
    provider = provider_for(Workspace(root))
    try:
        return [str(change) for change in provider.plan()]
    finally:
        provider.close()


def client_credentials_token(target: Target, client_id: str, secret: str) -> httpx.Response:
    return httpx.post(f"{target.oidc_url}/application/o/token/", auth=(client_id, secret),
                      data={"grant_type": "client_credentials", "scope": "openid"}, timeout=10)


def verify(target: Target, slug: str, token: str) -> dict:
    jwks = jwt.PyJWKClient(f"{target.oidc_url}/application/o/{slug}/jwks/")
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=slug,
                      issuer=f"{target.oidc_url}/application/o/{slug}/")


def test_first_provisioning_creates_provider_application_and_env(tmp_path, authentik_target):
    target = authentik_target
    workspace, loyalty, orders = make(tmp_path, target)
    assert plan(workspace.root) == [
        f"+ create oauth2 provider {workspace.ecosystem.name}/{loyalty}-provider (client_id {loyalty}, "
        "redirect http://127.0.0.1:8001/callback)",
        f"+ create application {loyalty} (bound to {workspace.ecosystem.name}/{loyalty}-provider)",
        f"+ create oauth2 provider {workspace.ecosystem.name}/{orders}-provider (client_id {orders}, redirect "
        "http://localhost:8002/auth/callback, http://orders.example.test/auth/callback)",
        f"+ create application {orders} (bound to {workspace.ecosystem.name}/{orders}-provider)"]

    provision(workspace)

    provider = target.provider(loyalty)
    assert provider["name"] == f"{workspace.ecosystem.name}/{loyalty}-provider" and provider["client_type"] == "confidential"
    assert [(u["matching_mode"], u["url"]) for u in provider["redirect_uris"]] == [
        ("strict", "http://127.0.0.1:8001/callback")]
    assert len(provider["property_mappings"]) == 3 and provider["signing_key"]
    assert len(provider["client_secret"]) >= 40  # ecoctl's, from .env
    assert (provider["access_token_validity"], provider["sub_mode"], provider["issuer_mode"]) == (
        "hours=1", "hashed_user_id", "per_provider")
    app = target.application(loyalty)
    assert app["provider"] == provider["pk"] and app["meta_publisher"] == f"ecoctl:{workspace.ecosystem.name}"
    assert [u["url"] for u in target.provider(orders)["redirect_uris"]] == [
        "http://localhost:8002/auth/callback", "http://orders.example.test/auth/callback"]

    env = Workspace(workspace.root).env
    prefix = loyalty.replace("-", "_").upper()
    assert env.get(f"{prefix}_OIDC_CLIENT_SECRET") == provider["client_secret"]
    assert (workspace.root / ".env").stat().st_mode & 0o777 == 0o600

    answer = client_credentials_token(target, loyalty, provider["client_secret"])
    assert answer.status_code == 200, answer.text
    claims = verify(target, loyalty, answer.json()["access_token"])
    assert claims["aud"] == loyalty
    assert jwt.get_unverified_header(answer.json()["access_token"])["alg"] == "RS256"

    if target.double:
        posts = target.double.api_calls("POST", "/api/v3/providers/oauth2/")
        assert [set(p.body) for p in posts] == [MEASURED_PROVIDER_KEYS] * 2
        assert "grant_types" not in posts[0].body


def test_second_run_changes_nothing(tmp_path, authentik_target):
    workspace, _, _ = make(tmp_path, authentik_target)
    provision(workspace)
    env_before = (workspace.root / ".env").read_bytes()
    writes = len(authentik_target.double.writes()) if authentik_target.double else 0

    assert provision(Workspace(workspace.root)) == []

    assert (workspace.root / ".env").read_bytes() == env_before
    if authentik_target.double:
        assert len(authentik_target.double.writes()) == writes
        lists = authentik_target.double.api_calls("GET", "/api/v3/providers/oauth2/")
        assert all("client_id" not in r.query for r in lists), "read is one list, not one call per service"


def test_redirect_uri_change_is_one_patch_of_that_field(tmp_path, authentik_target):
    workspace, loyalty, _ = make(tmp_path, authentik_target)
    provision(workspace)
    secret = Workspace(workspace.root).env.get(f"{loyalty.replace('-', '_').upper()}_OIDC_CLIENT_SECRET")
    workspace.ecosystem_file.update(
        lambda doc: doc["services"][loyalty].__setitem__("redirect_uris", ["http://localhost:8001/oidc/callback"]))
    writes = len(authentik_target.double.writes()) if authentik_target.double else 0

    assert plan(workspace.root) == [
        f"~ update oauth2 provider {workspace.ecosystem.name}/{loyalty}-provider (redirect_uris +http://localhost:8001/oidc/callback "
        "-http://127.0.0.1:8001/callback)"]
    provision(Workspace(workspace.root))

    assert [u["url"] for u in authentik_target.provider(loyalty)["redirect_uris"]] == [
        "http://localhost:8001/oidc/callback"]
    assert Workspace(workspace.root).env.get(
        f"{loyalty.replace('-', '_').upper()}_OIDC_CLIENT_SECRET") == secret
    if authentik_target.double:
        new = authentik_target.double.writes()[writes:]
        assert [(r.method, r.body) for r in new] == [
            ("PATCH", {"redirect_uris": [{"matching_mode": "strict", "url": "http://localhost:8001/oidc/callback"}]})]
    assert plan(workspace.root) == []


def test_provider_deleted_by_hand_is_recreated_and_rebound(tmp_path, authentik_target):
    target = authentik_target
    workspace, loyalty, _ = make(tmp_path, target)
    provision(workspace)
    old = target.provider(loyalty)
    with target.api() as api:
        assert api.delete(f"/providers/oauth2/{old['pk']}/").status_code == 204
    assert target.application(loyalty)["provider"] is None

    assert plan(workspace.root) == [
        f"+ create oauth2 provider {workspace.ecosystem.name}/{loyalty}-provider (client_id {loyalty}, "
        "redirect http://127.0.0.1:8001/callback)",
        f"~ update application {loyalty} (bind to {workspace.ecosystem.name}/{loyalty}-provider)"]
    provision(Workspace(workspace.root))

    new = target.provider(loyalty)
    assert new["pk"] != old["pk"] and target.application(loyalty)["provider"] == new["pk"]
    env = Workspace(workspace.root).env
    assert env.get(f"{loyalty.replace('-', '_').upper()}_OIDC_CLIENT_SECRET") == new["client_secret"]
    answer = client_credentials_token(target, loyalty, new["client_secret"])
    assert answer.status_code == 200 and verify(target, loyalty, answer.json()["access_token"])
    assert plan(workspace.root) == []


def test_bad_token_is_one_clear_line_and_writes_nothing(tmp_path, authentik_target):
    bad = "not-a-valid-token-0123456789"
    workspace, _, _ = make(tmp_path, authentik_target, token=bad)
    env_before = (workspace.root / ".env").read_bytes()

    with pytest.raises(EcoctlError) as caught:
        provision(workspace)

    message = str(caught.value)
    assert message.startswith("Authentik rejected the API token read from AUTHENTIK_BOOTSTRAP_TOKEN in "
                              f"{workspace.root / '.env'} (Token invalid/expired): set it to a valid token")
    assert "\n" not in message and bad not in message
    assert (workspace.root / ".env").read_bytes() == env_before


def test_502_twice_then_created(tmp_path, authentik_target):
    workspace, loyalty, _ = make(tmp_path, authentik_target)
    provider = provider_for(workspace)
    changes = provider.plan()
    authentik_target.fail_next(2)

    provider.apply(changes[0])  # create the loyalty provider: 502, 502, then 201

    created = authentik_target.provider(loyalty)
    assert created is not None
    assert Workspace(workspace.root).env.get(
        f"{loyalty.replace('-', '_').upper()}_OIDC_CLIENT_SECRET") == created["client_secret"]
    if authentik_target.double:
        posts = authentik_target.double.api_calls("POST", "/api/v3/providers/oauth2/")
        assert [r.status for r in posts] == [502, 502, 201]
    for change in changes[1:]:
        provider.apply(change)
    provider.close()
    assert plan(workspace.root) == []


def test_down_is_a_clear_error_within_the_bound(tmp_path, authentik_target, closed_url):
    workspace, _, _ = make(tmp_path, authentik_target)
    write_workspace(workspace.root, closed_url, authentik_target.token, {"loyalty": {"port": 8001}})
    env_before = (workspace.root / ".env").read_bytes()
    start = time.monotonic()

    provider = provider_for(Workspace(workspace.root))
    with pytest.raises(Unreachable) as caught:
        provider.plan()

    elapsed = time.monotonic() - start
    bound = sum(min(FAST["backoff"] * 2 ** i, FAST["max_backoff"]) for i in range(FAST["retries"]))
    assert elapsed < bound + 2, elapsed
    assert f"Authentik at {closed_url} does not answer (connection refused" in str(caught.value)
    assert "4 attempts" in str(caught.value) and "ecoctl up" in str(caught.value)
    done = converge_providers([provider])  # what `ecoctl apply` does: Authentik is listed as pending
    assert done.changes == [] and "does not answer" in done.pending["authentik"]
    assert (workspace.root / ".env").read_bytes() == env_before


def test_going_down_mid_apply_leaves_env_untouched(tmp_path, authentik_target):
    proxy = FaultProxy(authentik_target.base_url).start()
    try:
        workspace, _, _ = make(tmp_path, authentik_target)
        workspace = write_workspace(workspace.root, proxy.base_url, authentik_target.token,
                                    {name: {"port": 8001 + i} for i, name in enumerate(sorted(authentik_target.services))})
        provider = provider_for(workspace)
        changes = provider.plan()
        env_before = (workspace.root / ".env").read_bytes()
        proxy.stop()
        with pytest.raises(Unreachable):
            provider.apply(changes[0])
        provider.close()
        assert (workspace.root / ".env").read_bytes() == env_before
    finally:
        proxy.stop()


def test_removed_service_deletes_its_application_then_provider_only(tmp_path, authentik_target):
    target = authentik_target
    workspace, loyalty, orders = make(tmp_path, target)
    provision(workspace)
    handmade, foreign = f"{target.prefix}handmade", f"{target.prefix}foreign"
    target.services |= {handmade, foreign}
    with target.api() as api:
        assert api.post("/core/applications/", json={"name": "by hand", "slug": handmade}).status_code == 201
        assert api.post("/core/applications/", json={"name": "other", "slug": foreign,
                                                     "meta_publisher": "ecoctl:another-ecosystem"}).status_code == 201
    orders_pk = target.provider(orders)["pk"]
    workspace.ecosystem_file.update(lambda doc: doc["services"].pop(orders))

    assert plan(workspace.root) == [f"- delete application {orders} (service removed)",
                                    f"- delete oauth2 provider {workspace.ecosystem.name}/{orders}-provider (service removed)"]
    provision(Workspace(workspace.root))

    assert target.application(orders) is None and target.provider(orders) is None
    assert target.application(handmade) and target.application(foreign) and target.provider(loyalty)
    # its secrets stay in .env (a re-added service finds its kept database's password there)
    assert Workspace(workspace.root).env.get(f"{orders.replace('-', '_').upper()}_DB_PASSWORD")
    if target.double:
        deletes = [r.path for r in target.double.writes() if r.method == "DELETE"]
        assert deletes == [f"/api/v3/core/applications/{orders}/", f"/api/v3/providers/oauth2/{orders_pk}/"]
    assert plan(workspace.root) == []


def test_field_errors_are_shown(tmp_path, authentik_target):
    target = authentik_target
    workspace, loyalty, _ = make(tmp_path, target)
    squatter = f"{target.prefix}squatter"
    target.services.add(squatter)
    with AuthentikClient(target.base_url, target.token, **FAST) as client:
        defaults = client.defaults()
        client.post("/providers/oauth2/", {
            "name": f"{workspace.ecosystem.name}/{loyalty}-provider", "client_id": squatter,
            "authorization_flow": defaults.authorization_flow, "invalidation_flow": defaults.invalidation_flow,
            "redirect_uris": []})

    with pytest.raises(EcoctlError) as caught:
        provision(workspace)

    assert str(caught.value).startswith("Authentik rejected POST /api/v3/providers/oauth2/: "
                                        "name: provider with this name already exists.")
    assert "(not applied: create oauth2 provider" in str(caught.value)  # what did not land is named
    assert authentik_target.provider(loyalty) is None



def test_cleanup_deletes_the_client_credentials_service_account(tmp_path, authentik_target):
    """The scenarios' own cleanup (run after each, live too) leaves no `ak-…-client_credentials` user."""
    target = authentik_target
    workspace, loyalty, _ = make(tmp_path, authentik_target)
    provision(workspace)
    provider = target.provider(loyalty)
    assert client_credentials_token(target, loyalty, provider["client_secret"]).status_code == 200
    assert len(target.service_accounts(provider["name"])) == 1
    target.cleanup()
    assert target.service_accounts(provider["name"]) == [] and target.provider(loyalty) is None
