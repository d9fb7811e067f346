"""Issue 12, "Objects ecoctl does not own" (Authentik): ownership markers, per-ecosystem prefixes,
conflicts and --adopt, matching_mode / sub_mode drift, the client_credentials service account, and
where the API token is read from. Against the test double over loopback HTTP."""

from __future__ import annotations

import json

import httpx
import pytest

from ecoctl import contract
from ecoctl.errors import EcoctlError
from ecoctl.plan import Options
from ecoctl.workspace import Workspace
from tests.authentik_double import client_credentials_username
from tests.authentik_fixtures import (authentik_double, authentik_double_server, provider_for,  # noqa: F401
                                      write_workspace)
from tests.helpers import converge_providers


def ecosystem(tmp_path, double, name: str, services: dict, prefix: str | None = None) -> Workspace:
    workspace = write_workspace(tmp_path / name, double.base_url, double.token, services, name)
    if prefix is not None:
        workspace.ecosystem_file.update(lambda doc: doc["core"]["authentik"].__setitem__("prefix", prefix))
    return Workspace(workspace.root)


def plan(root, **options) -> list[str]:
    provider = provider_for(Workspace(root))
    provider.options = Options(**options)
    try:
        return [str(change) for change in provider.plan()]
    finally:
        provider.close()


def provision(root, **options) -> list[str]:
    provider = provider_for(Workspace(root))
    provider.options = Options(**options)
    try:
        return [str(change) for change in converge_providers([provider]).changes]
    finally:
        provider.close()


def login(double, client_id: str, secret: str) -> httpx.Response:
    return httpx.post(f"{double.base_url}/application/o/token/", auth=(client_id, secret),
                      data={"grant_type": "client_credentials", "scope": "openid"}, timeout=10)


def secret_of(root, service: str) -> str:
    return Workspace(root).env.get(contract.client_secret_key(service))


# -- 1. ownership and coexistence ------------------------------------------------------------------

def test_two_ecosystems_with_a_service_of_the_same_name_coexist(tmp_path, authentik_double):
    double = authentik_double
    alpha = ecosystem(tmp_path, double, "alpha", {"shop": {"port": 8001}}, prefix="alpha-")
    beta = ecosystem(tmp_path, double, "beta", {"shop": {"port": 8002}}, prefix="beta-")

    assert plan(alpha.root) == [
        "+ create oauth2 provider alpha/alpha-shop-provider (client_id alpha-shop, redirect http://127.0.0.1:8001/callback)",
        "+ create application alpha-shop (bound to alpha/alpha-shop-provider)"]
    provision(alpha.root)
    provision(beta.root)

    assert plan(alpha.root) == [] and plan(beta.root) == []  # nobody fights over anything
    mine, theirs = double.provider("alpha-shop"), double.provider("beta-shop")
    assert mine["client_secret"] == secret_of(alpha.root, "shop") != theirs["client_secret"]
    assert [u["url"] for u in theirs["redirect_uris"]] == ["http://127.0.0.1:8002/callback"]
    env = contract.environment(Workspace(alpha.root), "shop", "host")
    assert env["OIDC_CLIENT_ID"] == env["OIDC_AUDIENCE"] == "alpha-shop"
    assert env["OIDC_ISSUER"] == f"{double.base_url}/application/o/alpha-shop/"
    answer = login(double, "alpha-shop", mine["client_secret"])
    assert answer.status_code == 200, answer.text


def test_another_ecosystems_objects_are_a_conflict_and_apply_refuses(tmp_path, authentik_double):
    double = authentik_double
    first = ecosystem(tmp_path, double, "first", {"shop": {"port": 8001}})  # no prefix: today's slugs
    second = ecosystem(tmp_path, double, "second", {"shop": {"port": 8002}})
    provision(first.root)
    before = (dict(double.provider("shop")), dict(double.state.applications["shop"]))
    writes = len(double.writes())

    lines = plan(second.root)
    assert len(lines) == 2 and all("conflict" in line for line in lines), lines
    assert lines[0].startswith("! conflict oauth2 provider first/shop-provider (")
    assert "ecoctl:first" in lines[1]
    with pytest.raises(EcoctlError) as caught:
        provision(second.root)

    message = str(caught.value)
    assert "\n" not in message and "first/shop-provider" in message and "--adopt" in message
    assert len(double.writes()) == writes  # nothing of the first ecosystem was touched
    assert (double.provider("shop"), double.state.applications["shop"]) == before
    assert plan(first.root) == []


def test_a_hand_made_application_with_the_slug_is_left_alone(tmp_path, authentik_double):
    double = authentik_double
    with httpx.Client(base_url=f"{double.base_url}/api/v3",
                      headers={"Authorization": f"Bearer {double.token}"}) as api:
        assert api.post("/core/applications/", json={"name": "Shop (by hand)", "slug": "shop"}).status_code == 201
    eco = ecosystem(tmp_path, double, "demo", {"shop": {"port": 8001}})

    lines = plan(eco.root)
    assert lines[-1].startswith("! conflict application shop (made by hand or another tool")
    with pytest.raises(EcoctlError, match="application shop"):
        provision(eco.root)
    assert double.state.applications["shop"]["provider"] is None and double.provider("shop") is None

    eco.ecosystem_file.update(lambda doc: doc["services"].pop("shop"))
    assert plan(eco.root) == []  # not ours: never deleted either
    assert "shop" in double.state.applications


def test_adopt_takes_the_objects_over(tmp_path, authentik_double):
    double = authentik_double
    double.add_client("shop", ("http://127.0.0.1:8001/callback",))  # by hand: no publisher, plain name
    eco = ecosystem(tmp_path, double, "demo", {"shop": {"port": 8001}})

    done = provision(eco.root, adopt=True)

    assert done == ["~ update oauth2 provider demo/shop-provider (adopted; name; client_secret differs from "
                    ".env SHOP_OIDC_CLIENT_SECRET)",
                    "~ update application shop (adopted; bind to demo/shop-provider)"]
    assert double.state.applications["shop"]["meta_publisher"] == "ecoctl:demo"
    assert double.provider("shop")["name"] == "demo/shop-provider"
    assert plan(eco.root) == []


def test_objects_made_by_the_previous_ecoctl_stay_owned(tmp_path, authentik_double):
    """Before the marker, providers were named `<slug>-provider`; their application carries the publisher."""
    double = authentik_double
    provider = double.add_client("shop", ("http://127.0.0.1:8001/callback",))
    double.state.applications["shop"]["meta_publisher"] = "ecoctl:demo"
    eco = ecosystem(tmp_path, double, "demo", {"shop": {"port": 8001}})
    provider["client_secret"] = secret_of(eco.root, "shop")

    assert plan(eco.root) == []  # owned, and not renamed under a running system

    eco.ecosystem_file.update(lambda doc: doc["services"].pop("shop"))
    assert plan(eco.root) == ["- delete application shop (service removed)",
                              "- delete oauth2 provider shop-provider (service removed)"]


def test_own_provider_left_unbound_by_a_crash_is_not_a_conflict(tmp_path, authentik_double):
    double = authentik_double
    eco = ecosystem(tmp_path, double, "demo", {"shop": {"port": 8001}})
    provider = provider_for(eco)
    first = provider.plan()[0]
    provider.apply(first)  # killed here: the provider exists, its application does not
    provider.close()

    assert plan(eco.root) == ["+ create application shop (bound to demo/shop-provider)"]
    eco.ecosystem_file.update(lambda doc: doc["services"].pop("shop"))
    assert plan(eco.root) == ["- delete oauth2 provider demo/shop-provider (service removed)"]
    provision(eco.root)
    assert double.provider("shop") is None


def test_init_records_a_prefix_for_new_ecosystems_only(tmp_path):
    from ecoctl.commands.init import init_ecosystem

    init_ecosystem(tmp_path / "fresh", runtime="local", without=("web",))
    fresh = Workspace(tmp_path / "fresh").ecosystem
    assert fresh.core.authentik.prefix == "fresh-"
    assert contract.client_id(fresh, "portfolio") == "fresh-portfolio"
    # the local runtime's signing key mints for the same audience and issuer the service is given
    import jwt

    from ecoctl.commands.tokens import mint_token

    workspace = Workspace(tmp_path / "fresh")
    claims = jwt.decode(mint_token(workspace, "portfolio"), options={"verify_signature": False})
    env = contract.environment(workspace, "portfolio", "local")
    assert (claims["aud"], claims["iss"]) == (env["OIDC_AUDIENCE"], env["OIDC_ISSUER"])
    assert env["OIDC_ISSUER"].endswith("/application/o/fresh-portfolio/")

    old = write_workspace(tmp_path / "old", "http://127.0.0.1:9", "t", {"shop": {"port": 8001}}, "old")
    init_ecosystem(old.root, force=True)
    kept = Workspace(old.root).ecosystem
    assert kept.core.authentik.prefix == "" and contract.client_id(kept, "shop") == "shop"


def test_a_slug_longer_than_authentik_allows_is_refused_before_any_write(tmp_path, authentik_double):
    name = "a-rather-long-ecosystem-name-indeed"
    eco = ecosystem(tmp_path, authentik_double, name, {"loyalty-points-ledger": {"port": 8001}}, prefix=f"{name}-")
    with pytest.raises(EcoctlError, match="longer than 50 characters: shorten core.authentik.prefix"):
        plan(eco.root)
    assert authentik_double.writes() == []


# -- 2. drift that was missed ----------------------------------------------------------------------

def test_matching_mode_switched_to_regex_is_drift(tmp_path, authentik_double):
    double = authentik_double
    eco = ecosystem(tmp_path, double, "demo", {"shop": {"port": 8001}})
    provision(eco.root)
    double.provider("shop")["redirect_uris"][0]["matching_mode"] = "regex"
    writes = len(double.writes())

    assert plan(eco.root) == ["~ update oauth2 provider demo/shop-provider (redirect_uris "
                              "http://127.0.0.1:8001/callback regex->strict)"]
    provision(eco.root)

    assert [(r.method, r.body) for r in double.writes()[writes:]] == [
        ("PATCH", {"redirect_uris": [{"matching_mode": "strict", "url": "http://127.0.0.1:8001/callback"}]})]
    assert plan(eco.root) == []


def test_sub_mode_is_managed(tmp_path, authentik_double):
    double = authentik_double
    eco = ecosystem(tmp_path, double, "demo", {"shop": {"port": 8001}})
    provision(eco.root)
    assert double.provider("shop")["sub_mode"] == "hashed_user_id"
    double.provider("shop")["sub_mode"] = "user_email"
    writes = len(double.writes())

    assert plan(eco.root) == ["~ update oauth2 provider demo/shop-provider (sub_mode user_email->hashed_user_id)"]
    provision(eco.root)

    assert [(r.method, r.body) for r in double.writes()[writes:]] == [("PATCH", {"sub_mode": "hashed_user_id"})]
    assert plan(eco.root) == []


# -- 3. the client_credentials service account -----------------------------------------------------

def test_removing_a_service_deletes_its_client_credentials_account(tmp_path, authentik_double):
    double = authentik_double
    eco = ecosystem(tmp_path, double, "demo", {"shop": {"port": 8001}, "cart": {"port": 8002},
                                               "keep": {"port": 8003}})
    provision(eco.root)
    for service in ("shop", "keep"):
        assert login(double, service, secret_of(eco.root, service)).status_code == 200
    account = client_credentials_username("demo/shop-provider")
    assert double.user(account)["type"] == "service_account"
    # cart never logged in; a person happens to have its account's exact name: kept
    person = double.add_user(client_credentials_username("demo/cart-provider"), "internal")

    eco.ecosystem_file.update(lambda doc: [doc["services"].pop(name) for name in ("shop", "cart")])
    provision(eco.root)

    assert double.user(account) is None and double.provider("shop") is None and double.provider("cart") is None
    assert double.user(person["username"]) is not None and double.user("akadmin") is not None
    assert double.user(client_credentials_username("demo/keep-provider"))["type"] == "service_account"
    deletes = [r.path for r in double.writes() if r.method == "DELETE" and "/core/users/" in r.path]
    assert len(deletes) == 1
    assert plan(eco.root) == []


def test_conflict_through_the_cli_exits_1_with_one_line_and_adopt_takes_over(tmp_path, authentik_double):
    from tests.helpers import run_ecoctl

    double = authentik_double
    double.add_client("shop", ("http://127.0.0.1:8001/callback",))  # by hand
    eco = ecosystem(tmp_path, double, "demo", {"shop": {"port": 8001}})
    env = {"AUTHENTIK_TOKEN": double.token}

    planned = run_ecoctl("plan", "--only", "authentik", "--json", cwd=eco.root, env=env)
    texts = [change["text"] for change in json.loads(planned.stdout)["changes"]]
    assert len(texts) == 2 and all("conflict" in text for text in texts), planned.stdout + planned.stderr
    writes = len(double.writes())
    refused = run_ecoctl("apply", "--yes", "--only", "authentik", cwd=eco.root, env=env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "shop-provider" in refused.stderr
    assert "--adopt" in refused.stderr and "Traceback" not in refused.stderr
    assert len(double.writes()) == writes

    adopted = run_ecoctl("apply", "--yes", "--only", "authentik", "--adopt", cwd=eco.root, env=env)
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    assert double.state.applications["shop"]["meta_publisher"] == "ecoctl:demo"
    again = run_ecoctl("plan", "--only", "authentik", "--detailed-exitcode", cwd=eco.root, env=env)
    assert again.returncode == 0, again.stdout + again.stderr


# -- 4. where the token is read from ---------------------------------------------------------------

@pytest.mark.parametrize("variable", ["AUTHENTIK_BOOTSTRAP_TOKEN", "AUTHENTIK_TOKEN"])
def test_an_exported_token_beats_env_file(tmp_path, monkeypatch, variable):
    root = tmp_path / "eco"
    write_workspace(root, "http://127.0.0.1:9", "from-the-file", {"shop": {"port": 8001}})
    if variable == "AUTHENTIK_TOKEN":
        with open(root / ".env", "a") as env:
            env.write("AUTHENTIK_TOKEN=also-from-the-file\n")
    monkeypatch.delenv("AUTHENTIK_TOKEN", raising=False)
    monkeypatch.setenv(variable, "exported")

    endpoint = Workspace(root).authentik

    assert endpoint.token == "exported"
    assert endpoint.token_source == f"{variable} in the environment"


def test_env_file_token_is_used_when_nothing_is_exported(tmp_path, monkeypatch):
    root = tmp_path / "eco"
    write_workspace(root, "http://127.0.0.1:9", "from-the-file", {"shop": {"port": 8001}})
    monkeypatch.delenv("AUTHENTIK_TOKEN", raising=False)
    monkeypatch.delenv("AUTHENTIK_BOOTSTRAP_TOKEN", raising=False)

    endpoint = Workspace(root).authentik

    assert endpoint.token == "from-the-file" and endpoint.token_source.startswith("AUTHENTIK_BOOTSTRAP_TOKEN in ")
