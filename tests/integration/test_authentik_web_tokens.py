"""Under Authentik, an API accepts exactly the web apps granted to it (`calls`), end to end: the
web apps and services registered by ecoctl in the Authentik double (vendor models checked), a real
portfolio service (uvicorn, real PostgreSQL) configured from the contract (`OIDC_ACCEPTED_CLIENTS`),
and access tokens as Authentik issues them to a web app: under the web app's own issuer, with `aud`
its client id. A web app not granted the API, a granted issuer with another audience, and a key the
issuer does not publish are refused."""

from __future__ import annotations

import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ecoctl import contract
from ecoctl.workspace import Workspace
from tests.authentik_fixtures import authentik_double, authentik_double_server, write_workspace  # noqa: F401
from tests.integration.test_authentik_scenarios import provision

from portfolio_service.app import create_app  # noqa: E402
from portfolio_service.settings import Settings  # noqa: E402
from portfolio_service.testing import create_service_database, serve_app  # noqa: E402

DB, OWNER = "ak_web_tokens_db", "ak_web_tokens_user"


def web(port: int, api: str) -> dict:
    return {"port": port, "client": "public", "calls": [api], "redirect_uris": [f"http://127.0.0.1:{port}/callback"]}


@pytest.fixture
def api(pg, tmp_path, authentik_double):
    workspace = write_workspace(tmp_path / "eco", authentik_double.base_url, authentik_double.token, {
        "portfolio": {"port": 8000, "template": "portfolio"}, "loyalty": {"port": 8001},
        "shop-web": web(3000, "portfolio"), "loyalty-web": web(3005, "loyalty")})
    provision(workspace)
    workspace = Workspace(workspace.root)
    env = contract.service_environment(workspace.ecosystem, "portfolio", "host", workspace.env.values)
    password = "ak-web-tokens"
    create_service_database(pg.conninfo(), DB, OWNER, password)
    settings = Settings.from_env({**env, "DATABASE_HOST": pg.host, "DATABASE_PORT": str(pg.port),
                                  "DATABASE_NAME": DB, "DATABASE_USER": OWNER, "DATABASE_PASSWORD": password})
    with serve_app(create_app(settings)) as url:
        yield env, url


def portfolios(url: str, token: str) -> httpx.Response:
    return httpx.get(f"{url}/portfolios", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_the_api_lists_exactly_the_web_apps_that_call_it(api, authentik_double):
    env, _ = api
    issuer = authentik_double.issuer("shop-web")
    assert json.loads(env["OIDC_ACCEPTED_CLIENTS"]) == [
        {"issuer": issuer, "audience": "shop-web", "jwks_url": f"{issuer}jwks/"}]
    assert env["OIDC_ISSUER"] == authentik_double.issuer("portfolio")


def test_a_granted_web_apps_token_gets_in_and_others_are_refused(api, authentik_double):
    _, url = api
    assert portfolios(url, authentik_double.mint_token("shop-web", sub="alice")).status_code == 200
    assert portfolios(url, authentik_double.mint_token("portfolio", sub="svc")).status_code == 200  # its own
    refused = portfolios(url, authentik_double.mint_token("loyalty-web", sub="alice"))
    assert refused.status_code == 401 and "issuer" in refused.text  # a web app not granted portfolio
    assert portfolios(url, authentik_double.mint_token("loyalty", sub="svc")).status_code == 401
    other_audience = portfolios(url, authentik_double.mint_token("shop-web", audience="loyalty-web"))
    assert other_audience.status_code == 401 and "audience" in other_audience.text


def test_a_granted_issuer_is_checked_against_its_own_keys(api, authentik_double):
    _, url = api
    now = int(time.time())
    forged = jwt.encode({"iss": authentik_double.issuer("shop-web"), "aud": "shop-web", "sub": "mallory",
                         "exp": now + 300, "iat": now}, rsa.generate_private_key(public_exponent=65537, key_size=2048),
                        algorithm="RS256", headers={"kid": authentik_double._kid()})
    assert portfolios(url, forged).status_code == 401
