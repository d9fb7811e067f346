"""The audience rule end to end: a real portfolio service (uvicorn, real PostgreSQL) trusting the
development sign-in through its JWKS URL, as the contract sets it up, and tokens that web apps and
services got from the sign-in over HTTP: a web app's token is accepted by the API it calls and
refused by one it was not granted."""

from __future__ import annotations

import httpx
import pytest

from ecoctl import contract
from ecoctl.model import Ecosystem
from tests.helpers import free_port
from tests.signin_helpers import running_issuer, web_app_tokens

from portfolio_service.app import create_app  # noqa: E402
from portfolio_service.settings import Settings  # noqa: E402
from portfolio_service.testing import create_service_database, serve_app  # noqa: E402

DB, OWNER = "signin_api_test_db", "signin_api_test_user"
PORTFOLIO_WEB, LOYALTY_WEB = "http://127.0.0.1:3000/callback", "http://127.0.0.1:3001/callback"  # their default URIs


def ecosystem(port: int) -> Ecosystem:
    return Ecosystem.from_data({
        "name": "aud", "runtime": "local",
        "core": {"authentik": {"port": port, "prefix": "aud-"}, "signin": {"users": ["alice"]}},
        "services": {
            "portfolio": {"port": 8000, "template": "portfolio"},
            "loyalty": {"port": 8001},
            "portfolio-web": {"port": 3000, "client": "public", "calls": ["portfolio"]},
            "loyalty-web": {"port": 3001, "client": "public", "calls": ["loyalty"]},
        }})


@pytest.fixture(scope="module")
def stack(pg, tmp_path_factory):
    port = free_port()
    model = ecosystem(port)
    with running_issuer(tmp_path_factory.mktemp("signin"), model, port) as issuer:
        password = "signin-api-test"
        create_service_database(pg.conninfo(), DB, OWNER, password)
        # the contract's OIDC variables for the portfolio service, as the local runtime hands them
        env = contract.service_environment(model, "portfolio", "local", issuer.env)
        assert env["OIDC_JWKS_URL"] == f"{issuer.url}/application/o/aud-portfolio/jwks/"
        settings = Settings.from_env({**env, "DATABASE_HOST": pg.host, "DATABASE_PORT": str(pg.port),
                                      "DATABASE_NAME": DB, "DATABASE_USER": OWNER, "DATABASE_PASSWORD": password})
        with serve_app(create_app(settings)) as url:
            yield issuer, url


def portfolios(url: str, token: str) -> httpx.Response:
    return httpx.get(f"{url}/portfolios", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_the_web_app_that_calls_the_api_gets_in(stack):
    issuer, url = stack
    tokens = web_app_tokens(issuer, "aud-portfolio-web", "alice", PORTFOLIO_WEB)
    answer = portfolios(url, tokens["access_token"])
    assert answer.status_code == 200, answer.text


def test_a_token_of_a_web_app_not_granted_the_api_is_refused(stack):
    issuer, url = stack
    tokens = web_app_tokens(issuer, "aud-loyalty-web", "alice", LOYALTY_WEB)
    answer = portfolios(url, tokens["access_token"])
    assert answer.status_code == 401
    assert "audience" in answer.text or "issuer" in answer.text
    # nor does its ID token get in (its audience is the web app itself)
    assert portfolios(url, tokens["id_token"]).status_code == 401


def test_service_tokens_by_client_credentials(stack):
    issuer, url = stack

    def service_token(name: str) -> str:
        response = httpx.post(f"{issuer.url}/application/o/token/", data={"grant_type": "client_credentials"},
                              auth=(f"aud-{name}", f"{name}-secret"))
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    assert portfolios(url, service_token("portfolio")).status_code == 200
    assert portfolios(url, service_token("loyalty")).status_code == 401
