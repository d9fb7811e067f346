"""The Authentik test double agrees with what a real Authentik 2025.12.4 was measured to answer."""

from __future__ import annotations

import uuid

import httpx
import jwt
import pytest

from tests.authentik_fixtures import authentik_double, authentik_double_server  # noqa: F401


@pytest.fixture
def api(authentik_double):
    with httpx.Client(base_url=f"{authentik_double.base_url}/api/v3",
                      headers={"Authorization": f"Bearer {authentik_double.token}"}) as client:
        yield client


def provider_body(double, **overrides) -> dict:
    body = {"name": "loyalty-service-provider", "client_type": "confidential", "client_id": "loyalty-service",
            "authorization_flow": double.flow_pk("default-provider-authorization-implicit-consent"),
            "invalidation_flow": double.flow_pk("default-provider-invalidation-flow"),
            "redirect_uris": [{"matching_mode": "strict", "url": "http://127.0.0.1:8080/callback"}],
            "signing_key": next(iter(double.state.certificates)),
            "property_mappings": [pk for pk, m in double.state.scope_mappings.items()
                                  if m["scope_name"] in ("openid", "email", "profile")]}
    return {**body, **overrides}


def test_measured_create_answers_and_duplicates(authentik_double, api):
    created = api.post("/providers/oauth2/", json=provider_body(authentik_double))
    assert created.status_code == 201
    provider = created.json()
    assert isinstance(provider["pk"], int) and len(provider["client_secret"]) == 128
    assert (provider["access_token_validity"], provider["sub_mode"], provider["issuer_mode"]) == (
        "hours=1", "hashed_user_id", "per_provider")
    app = api.post("/core/applications/", json={"name": "Loyalty", "slug": "loyalty-service",
                                                 "provider": provider["pk"]})
    assert app.status_code == 201 and uuid.UUID(app.json()["pk"])

    again = api.post("/providers/oauth2/", json=provider_body(authentik_double))
    assert (again.status_code, again.json()) == (400, {
        "name": ["provider with this name already exists."],
        "client_id": ["OAuth2/OpenID Provider with this Client ID already exists."]})
    again = api.post("/core/applications/", json={"name": "L", "slug": "loyalty-service", "provider": provider["pk"]})
    assert (again.status_code, again.json()) == (400, {
        "slug": ["Application with this slug already exists."],
        "provider": ["Application with this provider already exists."]})


def test_authentication_errors(authentik_double):
    url = f"{authentik_double.base_url}/api/v3/core/applications/"
    none = httpx.get(url)
    assert (none.status_code, none.json()) == (403, {"detail": "Authentication credentials were not provided."})
    bad = httpx.get(url, headers={"Authorization": "Bearer nope"})
    assert (bad.status_code, bad.json()) == (403, {"detail": "Token invalid/expired"})


@pytest.mark.parametrize("overrides, errors", [
    ({"redirect_uris": "http://127.0.0.1:8080/callback"}, {"redirect_uris": ["Input should be a valid list"]}),
    ({"grant_types": []}, {"grant_types": ["This list may not be empty."]}),
    ({"invalidation_flow": None}, {"invalidation_flow": ["UUID input should be a string, bytes or UUID object"]}),
    ({"signing_key": str(uuid.UUID(int=1))},
     {"signing_key": ['Invalid pk "00000000-0000-0000-0000-000000000001" - object does not exist.']}),
    ({"redirect_uri": "x"}, {"redirect_uri": [
        "Unknown field (the ecoctl test double rejects what Authentik would ignore)."]}),
])
def test_request_bodies_are_validated_with_the_vendor_models(authentik_double, api, overrides, errors):
    answer = api.post("/providers/oauth2/", json=provider_body(authentik_double, **overrides))
    assert (answer.status_code, answer.json()) == (400, errors)
    assert authentik_double.state.providers == {}


def test_missing_required_fields(authentik_double, api):
    answer = api.post("/providers/oauth2/", json={"name": "x"})
    assert answer.json() == {"authorization_flow": ["This field is required."],
                             "invalidation_flow": ["This field is required."],
                             "redirect_uris": ["This field is required."]}


def test_lists_paginate_with_the_real_shape(authentik_double, api):
    for name in ("a", "b", "c"):
        authentik_double.add_client(name)
    first = api.get("/core/applications/").json()
    assert first["pagination"] == {"next": 2, "previous": 0, "count": 3, "current": 1, "total_pages": 2,
                                   "start_index": 1, "end_index": 2}
    last = api.get("/core/applications/", params={"page": 2}).json()
    assert last["pagination"]["next"] == 0 and [a["slug"] for a in last["results"]] == ["c"]
    assert api.get("/propertymappings/scope/").status_code == 404


def test_patch_validates_and_changes_only_what_was_sent(authentik_double, api):
    provider = authentik_double.add_client("loyalty", ("http://a/cb",))
    answer = api.patch(f"/providers/oauth2/{provider['pk']}/", json={"redirect_uris": [{"matching_mode": "exact",
                                                                                         "url": "http://b"}]})
    assert answer.status_code == 400 and "redirect_uris" in answer.json()
    answer = api.patch(f"/providers/oauth2/{provider['pk']}/",
                       json={"redirect_uris": [{"matching_mode": "regex", "url": "http://b/.*"}]})
    assert answer.status_code == 200
    assert answer.json()["redirect_uris"] == [{"matching_mode": "regex", "url": "http://b/.*"}]
    assert answer.json()["client_secret"] == provider["client_secret"]
    assert api.get("/providers/oauth2/999/").json() == {"detail": "No OAuth2Provider matches the given query."}


def test_client_credentials_needs_a_bound_application(authentik_double, api):
    created = api.post("/providers/oauth2/", json=provider_body(authentik_double)).json()
    token_url = f"{authentik_double.base_url}/application/o/token/"
    form = {"grant_type": "client_credentials", "client_id": "loyalty-service", "client_secret": created["client_secret"]}
    assert httpx.post(token_url, data=form).json()["error"] == "invalid_grant"
    assert httpx.post(token_url, data={**form, "client_secret": "wrong"}).json()["error"] == "invalid_client"

    api.post("/core/applications/", json={"name": "L", "slug": "loyalty", "provider": created["pk"]})
    token = httpx.post(token_url, data=form).json()["access_token"]
    base = authentik_double.base_url
    assert api.get(f"/providers/oauth2/{created['pk']}/setup_urls/").json()["jwks"] == (
        f"{base}/application/o/loyalty/jwks/")
    config = httpx.get(f"{base}/application/o/loyalty/.well-known/openid-configuration").json()
    assert config["issuer"] == f"{base}/application/o/loyalty/" and config["token_endpoint"] == (
        f"{base}/application/o/token/")
    key = jwt.PyJWKClient(config["jwks_uri"]).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience="loyalty-service", issuer=config["issuer"])
    assert claims["azp"] == "loyalty-service"


def test_minted_tokens_validate_against_the_served_jwks(authentik_double):
    authentik_double.add_client("loyalty")
    jwks = jwt.PyJWKClient(f"{authentik_double.base_url}/application/o/loyalty/jwks/")
    token = authentik_double.mint_token("loyalty", sub="alice", scope="openid portfolio:read")
    claims = jwt.decode(token, jwks.get_signing_key_from_jwt(token).key, algorithms=["RS256"],
                        audience="loyalty", issuer=authentik_double.issuer("loyalty"))
    assert (claims["sub"], claims["scope"]) == ("alice", "openid portfolio:read")
    expired = authentik_double.mint_token("loyalty", ttl=-60)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(expired, jwks.get_signing_key_from_jwt(expired).key, algorithms=["RS256"], audience="loyalty")


def test_deleting_a_provider_unbinds_its_application(authentik_double, api):
    provider = authentik_double.add_client("loyalty")
    assert api.delete(f"/providers/oauth2/{provider['pk']}/").status_code == 204
    app = api.get("/core/applications/loyalty/").json()
    assert app["provider"] is None and app["provider_obj"] is None
    assert httpx.get(f"{authentik_double.base_url}/application/o/loyalty/jwks/").status_code == 404
