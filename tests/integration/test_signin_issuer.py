"""The development sign-in as a real OIDC issuer over loopback: its program (`python -m
ecoctl.issuer`) started on a config rendered by `ecoctl.signin` from a real ecosystem, driven with
httpx as a browser and a service would (discovery, the sign-in form, PKCE, refresh,
client_credentials, userinfo, end-session)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from ecoctl import contract
from ecoctl.model import Ecosystem
from tests import signin_helpers as helpers
from tests.helpers import free_port
from tests.signin_helpers import pkce, running_issuer

WEB = "http://127.0.0.1:3000/"


def ecosystem(port: int) -> Ecosystem:
    return Ecosystem.from_data({
        "name": "demo", "runtime": "local",
        "core": {"authentik": {"port": port, "prefix": "demo-"}, "signin": {"users": ["alice", "bob"]}},
        "services": {
            "portfolio": {"port": 8000, "template": "portfolio"},
            "loyalty": {"port": 8001},
            "portfolio-web": {"port": 3000, "client": "public", "calls": ["portfolio"],
                              "redirect_uris": [WEB], "post_logout_redirect_uris": [WEB]},
            "loyalty-web": {"port": 3001, "client": "public", "calls": ["loyalty"]},
        }})


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    port = free_port()
    with running_issuer(tmp_path_factory.mktemp("signin"), ecosystem(port), port) as running:
        yield running


def sign_in(issuer, client_id, user, password, challenge, redirect_uri=WEB, **extra):
    return helpers.sign_in(issuer, client_id, user, password, challenge, redirect_uri, **extra)


def code_of(answer):
    return helpers.code_of(answer, WEB)


def discovery(issuer, client_id: str) -> dict:
    response = httpx.get(f"{issuer.url}/application/o/{client_id}/.well-known/openid-configuration")
    response.raise_for_status()
    return response.json()


def jwks_client(issuer, client_id: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(discovery(issuer, client_id)["jwks_uri"])


def test_discovery_is_valid_oidc_and_only_s256(issuer):
    from authlib.oidc.discovery import OpenIDProviderMetadata
    from authlib.oidc.rpinitiated.discovery import OpenIDProviderMetadata as LogoutMetadata

    document = discovery(issuer, "demo-portfolio-web")
    OpenIDProviderMetadata(document).validate(metadata_classes=[LogoutMetadata])
    assert document["issuer"] == contract.issuer(issuer.model, "portfolio-web") == \
        f"{issuer.url}/application/o/demo-portfolio-web/"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert httpx.get(document["jwks_uri"]).json()["keys"][0]["kty"] == "RSA"
    assert httpx.get(f"{issuer.url}/application/o/nobody/.well-known/openid-configuration").status_code == 404


def test_plain_pkce_is_refused(issuer):
    query = {"response_type": "code", "client_id": "demo-portfolio-web", "redirect_uri": WEB, "scope": "openid",
             "state": "s", "code_challenge": "a" * 43, "code_challenge_method": "plain"}
    answer = httpx.get(f"{issuer.url}/application/o/authorize/?{urlencode(query)}")
    assert answer.status_code == 302
    assert parse_qs(urlsplit(answer.headers["location"]).query)["error"] == ["invalid_request"]


def test_a_public_client_needs_pkce(issuer):
    query = {"response_type": "code", "client_id": "demo-portfolio-web", "redirect_uri": WEB, "scope": "openid",
             "state": "s"}
    browser = httpx.Client()
    form = browser.get(f"{issuer.url}/application/o/authorize/?{urlencode(query)}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    answer = browser.post(f"{issuer.url}/application/o/authorize/?{urlencode(query)}",
                          data={"csrf": csrf, "username": "alice", "password": "alice-password"})
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    token = httpx.post(f"{issuer.url}/application/o/token/", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": WEB, "client_id": "demo-portfolio-web"})
    assert token.status_code == 400
    assert token.json()["error"] == "invalid_request"


def test_code_flow_with_pkce_then_refresh_then_userinfo(issuer):
    verifier, challenge = pkce()
    _browser, answer = sign_in(issuer, "demo-portfolio-web", "alice", "alice-password", challenge)
    code = code_of(answer)
    token_url = discovery(issuer, "demo-portfolio-web")["token_endpoint"]
    wrong = httpx.post(token_url, data={"grant_type": "authorization_code", "code": code, "redirect_uri": WEB,
                                        "client_id": "demo-portfolio-web", "code_verifier": pkce()[0]})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    verifier2, challenge2 = pkce()
    _browser, answer = sign_in(issuer, "demo-portfolio-web", "alice", "alice-password", challenge2)
    tokens = httpx.post(token_url, data={"grant_type": "authorization_code", "code": code_of(answer),
                                         "redirect_uri": WEB, "client_id": "demo-portfolio-web",
                                         "code_verifier": verifier2})
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    id_claims = jwt.decode(body["id_token"], jwks_client(issuer, "demo-portfolio-web").get_signing_key_from_jwt(
        body["id_token"]).key, algorithms=["RS256"], audience="demo-portfolio-web",
        issuer=contract.issuer(issuer.model, "portfolio-web"))
    assert id_claims["sub"] == "alice" and id_claims["nonce"] == "n0nce" and id_claims["email"] == "alice@localhost"
    # the access token is the API's: what the portfolio service checks (its issuer, its audience)
    access = jwt.decode(body["access_token"], jwks_client(issuer, "demo-portfolio").get_signing_key_from_jwt(
        body["access_token"]).key, algorithms=["RS256"], audience="demo-portfolio",
        issuer=contract.issuer(issuer.model, "portfolio"))
    assert access["sub"] == "alice" and access["azp"] == "demo-portfolio-web"
    info = httpx.get(f"{issuer.url}/application/o/userinfo/",
                     headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200 and info.json()["preferred_username"] == "alice"
    renewed = httpx.post(token_url, data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                                          "client_id": "demo-portfolio-web"})
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["refresh_token"] != body["refresh_token"]
    assert jwt.decode(renewed.json()["access_token"], options={"verify_signature": False})["aud"] == "demo-portfolio"
    again = httpx.post(token_url, data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                                        "client_id": "demo-portfolio-web"})
    assert again.status_code == 400  # rotated: the old one is spent


def test_wrong_password_is_said_on_the_page(issuer):
    _verifier, challenge = pkce()
    _browser, answer = sign_in(issuer, "demo-portfolio-web", "alice", "not-her-password", challenge)
    assert answer.status_code == 200
    assert "Wrong user name or password." in answer.text
    assert 'value="alice"' in answer.text  # the name is kept, the password is not


def test_client_credentials_for_a_service(issuer):
    token_url = f"{issuer.url}/application/o/token/"
    answer = httpx.post(token_url, data={"grant_type": "client_credentials", "scope": "openid"},
                        auth=("demo-loyalty", "loyalty-secret"))
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert (claims["iss"], claims["aud"], claims["sub"]) == (contract.issuer(issuer.model, "loyalty"), "demo-loyalty",
                                                              "demo-loyalty")
    assert httpx.post(token_url, data={"grant_type": "client_credentials"},
                      auth=("demo-loyalty", "wrong")).status_code == 401
    # a web app has no secret and no client_credentials
    assert httpx.post(token_url, data={"grant_type": "client_credentials", "client_id": "demo-loyalty-web"}
                      ).status_code in (400, 401)


def test_a_web_app_cannot_ask_for_an_api_it_does_not_call(issuer):
    _verifier, challenge = pkce()
    query = {"response_type": "code", "client_id": "demo-loyalty-web", "redirect_uri": "http://127.0.0.1:3001/callback",
             "scope": "openid", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256",
             "resource": "demo-portfolio"}
    answer = httpx.get(f"{issuer.url}/application/o/authorize/?{urlencode(query)}")
    assert answer.status_code == 302
    assert parse_qs(urlsplit(answer.headers["location"]).query)["error"] == ["invalid_target"]


def test_end_session_signs_out_and_redirects_only_where_registered(issuer):
    verifier, challenge = pkce()
    browser, answer = sign_in(issuer, "demo-portfolio-web", "bob", "bob-password", challenge)
    tokens = httpx.post(f"{issuer.url}/application/o/token/", data={
        "grant_type": "authorization_code", "code": code_of(answer), "redirect_uri": WEB,
        "client_id": "demo-portfolio-web", "code_verifier": verifier}).json()
    end = discovery(issuer, "demo-portfolio-web")["end_session_endpoint"]
    elsewhere = browser.get(end, params={"id_token_hint": tokens["id_token"],
                                         "post_logout_redirect_uri": "https://evil.example/"})
    assert elsewhere.status_code == 200 and "signed out" in elsewhere.text  # no redirection there
    _verifier, challenge = pkce()
    browser, answer = sign_in(issuer, "demo-portfolio-web", "bob", "bob-password", challenge)
    code_of(answer)
    out = browser.get(end, params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": WEB,
                                   "state": "bye"})
    assert out.status_code == 302 and out.headers["location"] == f"{WEB}?state=bye"
    # signed out: the next authorization request shows the sign-in page again
    query = {"response_type": "code", "client_id": "demo-portfolio-web", "redirect_uri": WEB, "scope": "openid",
             "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"}
    assert "Development sign-in" in browser.get(f"{issuer.url}/application/o/authorize/?{urlencode(query)}").text
    refreshed = httpx.post(f"{issuer.url}/application/o/token/", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "demo-portfolio-web"})
    assert refreshed.status_code == 400


def test_a_web_apps_scripts_may_call_the_token_endpoint_others_not(issuer):
    token_url = f"{issuer.url}/application/o/token/"
    preflight = httpx.options(token_url, headers={"Origin": "http://127.0.0.1:3000",
                                                  "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    answer = httpx.post(token_url, data={"grant_type": "refresh_token", "refresh_token": "x",
                                         "client_id": "demo-portfolio-web"}, headers={"Origin": "http://127.0.0.1:3000"})
    assert answer.headers["access-control-allow-origin"] == "http://127.0.0.1:3000"
    stranger = httpx.post(token_url, data={"grant_type": "refresh_token", "refresh_token": "x",
                                           "client_id": "demo-portfolio-web"}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in stranger.headers
    assert httpx.options(token_url, headers={"Origin": "https://evil.example"}).status_code != 204
