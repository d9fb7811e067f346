"""The Portfolio Manager API under a real uvicorn, against a real PostgreSQL database."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import psycopg
import pytest


from portfolio_service.app import create_app  # noqa: E402
from portfolio_service.settings import Settings  # noqa: E402
from portfolio_service.testing import TokenIssuer, provisioned_settings, serve_app, serve_jwks  # noqa: E402

DB = "portfolio_api_test_db"
OWNER = DB.removesuffix("_db") + "_user"  # not portfolio_user: ecosystems on this server make that one
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def issuer():
    return TokenIssuer()


@pytest.fixture(scope="module")
def service(pg, issuer, tmp_path_factory):
    settings = provisioned_settings(pg, DB, issuer, tmp_path_factory.mktemp("jwks"), owner=OWNER)
    with serve_app(create_app(settings)) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield SimpleNamespace(url=url, client=client, settings=settings, dsn=pg.conninfo(dbname=DB))


def as_user(service, issuer, sub, **kwargs):
    return httpx.Client(base_url=service.url, headers=issuer.headers(sub, **kwargs), timeout=10)


def new_portfolio(client, name="Main", currency="EUR") -> int:
    response = client.post("/portfolios", json={"name": name, "currency": currency})
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/portfolios/{response.json()['id']}"
    return response.json()["id"]


def assert_problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    return body


def test_healthz_answers_without_a_token(service):
    response = service.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_tokens_are_checked(service, issuer):
    """What tests/contract does not: the exact answer without a token, and a key the issuer never
    published (bad signature, expiry, audience, issuer, algorithms, subject: tests/contract)."""
    client = service.client
    missing = client.get("/portfolios")
    assert assert_problem(missing, 401)["detail"] == "a bearer token is required"
    assert missing.headers["www-authenticate"] == "Bearer"
    unknown_key = client.get("/portfolios", headers=TokenIssuer(issuer.issuer, issuer.audience).headers("alice"))
    assert "does not publish" in assert_problem(unknown_key, 401)["detail"]
    assert unknown_key.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert client.get("/portfolios", headers=issuer.headers("alice")).status_code == 200


def test_tokens_from_a_jwks_url_follow_key_rotation(service, issuer, pg):
    rotating = TokenIssuer(issuer.issuer, issuer.audience)
    with serve_jwks(rotating) as jwks_url:
        settings = Settings(**{**service.settings.__dict__, "oidc_jwks_file": None, "oidc_jwks_url": jwks_url,
                               "jwks_min_refresh_seconds": 0.0, "run_migrations": False})
        with serve_app(create_app(settings)) as url:
            assert httpx.get(f"{url}/portfolios", headers=rotating.headers("alice")).status_code == 200
            rotating.rotate()  # a token signed by the new key makes the service fetch the key set again
            assert httpx.get(f"{url}/portfolios", headers=rotating.headers("alice")).status_code == 200


def test_users_see_only_their_own_portfolios(service, issuer):
    with as_user(service, issuer, "alice") as alice, as_user(service, issuer, "bob") as bob:
        mine = new_portfolio(alice, "Alice's")
        assert alice.post(f"/portfolios/{mine}/transactions",
                          json={"type": "deposit", "amount": "100"}).status_code == 201
        assert [p["id"] for p in alice.get("/portfolios").json()["items"]].count(mine) == 1
        assert mine not in [p["id"] for p in bob.get("/portfolios").json()["items"]]
        for method, path, body in [("GET", f"/portfolios/{mine}", None),
                                   ("PATCH", f"/portfolios/{mine}", {"name": "taken"}),
                                   ("GET", f"/portfolios/{mine}/transactions", None),
                                   ("POST", f"/portfolios/{mine}/transactions", {"type": "deposit", "amount": "1"}),
                                   ("GET", f"/portfolios/{mine}/holdings", None),
                                   ("GET", f"/portfolios/{mine}/valuation", None),
                                   ("DELETE", f"/portfolios/{mine}", None)]:
            theirs = bob.request(method, path, json=body)
            missing = bob.request(method, path.replace(str(mine), "999999999"), json=body)
            assert_problem(theirs, 404)
            # the same answer as for a portfolio that does not exist: nothing leaks
            assert theirs.json()["detail"].replace(str(mine), "N") == missing.json()["detail"].replace(
                "999999999", "N")
        after = alice.get(f"/portfolios/{mine}").json()
        assert after["name"] == "Alice's"
        assert alice.get(f"/portfolios/{mine}/transactions").json()["total"] == 1


def count_transactions(service, portfolio_id):
    with psycopg.connect(service.dsn) as conn:
        return conn.execute("SELECT count(*) FROM transactions WHERE portfolio_id = %s",
                            (portfolio_id,)).fetchone()[0]


def test_a_sell_beyond_holdings_is_refused_and_writes_nothing(service, issuer):
    with as_user(service, issuer, "carol") as carol:
        pid = new_portfolio(carol)
        buy = {"type": "buy", "symbol": "ACME", "quantity": "10", "price": "5",
               "executed_at": "2024-01-10T00:00:00Z"}
        assert carol.post(f"/portfolios/{pid}/transactions", json=buy).status_code == 201
        before = count_transactions(service, pid)
        too_many = carol.post(f"/portfolios/{pid}/transactions",
                              json={"type": "sell", "symbol": "ACME", "quantity": "10.5", "price": "6"})
        body = assert_problem(too_many, 422)
        assert body["type"] == "urn:problem-type:portfolio:insufficient-holdings"
        assert (body["symbol"], body["held"], body["requested"]) == ("ACME", "10", "10.5")
        before_the_buy = carol.post(f"/portfolios/{pid}/transactions", json={
            "type": "sell", "symbol": "ACME", "quantity": "1", "price": "6", "executed_at": "2024-01-01T00:00:00Z"})
        assert assert_problem(before_the_buy, 422)["held"] == "0"
        never_held = carol.post(f"/portfolios/{pid}/transactions",
                                json={"type": "sell", "symbol": "OTHER", "quantity": "1", "price": "6"})
        assert_problem(never_held, 422)
        assert count_transactions(service, pid) == before
        assert carol.post(f"/portfolios/{pid}/transactions",
                          json={"type": "sell", "symbol": "ACME", "quantity": "10", "price": "6"}).status_code == 201
        # a sell backdated before the others would leave a later sell uncovered
        backdated = carol.post(f"/portfolios/{pid}/transactions", json={
            "type": "sell", "symbol": "ACME", "quantity": "1", "price": "6", "executed_at": "2024-01-11T00:00:00Z"})
        assert "later sell" in assert_problem(backdated, 422)["detail"]
        assert count_transactions(service, pid) == before + 1


def test_valuation_of_a_worked_example_is_exact(service, issuer):
    """README's example: two buys, a partial sell, a dividend; average cost."""
    with as_user(service, issuer, "dave") as dave, \
            as_user(service, issuer, "admin", scope="openid portfolio:admin") as admin:
        pid = new_portfolio(dave, "Worked example", "USD")
        ledger = [
            {"type": "deposit", "amount": "10000", "executed_at": "2024-01-01T09:00:00Z"},
            {"type": "buy", "symbol": "ACME", "quantity": "10", "price": "100", "fee": "5",
             "executed_at": "2024-01-02T09:00:00Z"},
            {"type": "buy", "symbol": "ACME", "quantity": "5", "price": "130", "fee": "5",
             "executed_at": "2024-02-01T09:00:00Z"},
            {"type": "buy", "symbol": "BOLT", "quantity": "3", "price": 33.33,
             "executed_at": "2024-02-15T09:00:00Z"},
            {"type": "sell", "symbol": "ACME", "quantity": "6", "price": "150", "fee": "4",
             "executed_at": "2024-03-01T09:00:00Z"},
            {"type": "dividend", "symbol": "ACME", "amount": "12.50", "executed_at": "2024-03-15T09:00:00Z"},
        ]
        for transaction in ledger:
            response = dave.post(f"/portfolios/{pid}/transactions", json=transaction)
            assert response.status_code == 201, response.text
        assert admin.post("/instruments/ACME/prices", json={
            "currency": "USD", "price": "150", "as_of": "2024-03-20T00:00:00Z"}).status_code == 201
        assert admin.post("/instruments/ACME/prices", json={
            "currency": "USD", "price": "160", "as_of": "2024-03-31T00:00:00Z"}).status_code == 201
        assert admin.post("/instruments/ACME/prices", json={
            "currency": "EUR", "price": "1", "as_of": "2024-04-30T00:00:00Z"}).status_code == 201
        denied = dave.post("/instruments/ACME/prices", json={"currency": "USD", "price": "1"})
        assert_problem(denied, 403)

        valuation = dave.get(f"/portfolios/{pid}/valuation").json()
        acme, bolt = valuation["holdings"]
        assert acme == {"symbol": "ACME", "quantity": "9", "average_cost": "110.6666666667", "cost_basis": "996",
                        "price": "160", "price_as_of": "2024-03-31T00:00:00Z", "market_value": "1440",
                        "unrealized_gain": "444", "realized_gain": "232", "dividends": "12.5"}
        assert bolt == {"symbol": "BOLT", "quantity": "3", "average_cost": "33.33", "cost_basis": "99.99",
                        "price": None, "price_as_of": None, "market_value": None, "unrealized_gain": None,
                        "realized_gain": "0", "dividends": "0"}
        assert valuation["totals"] == {"market_value": "1440", "cost_basis": "1095.99", "unrealized_gain": "444",
                                       "realized_gain": "232", "dividends": "12.5", "cash": "9148.51",
                                       "total_value": "10588.51", "unpriced_positions": 1}
        holdings = dave.get(f"/portfolios/{pid}/holdings").json()["items"]
        assert [(h["symbol"], h["quantity"], h["cost_basis"]) for h in holdings] == [
            ("ACME", "9", "996"), ("BOLT", "3", "99.99")]
        listed = dave.get(f"/portfolios/{pid}/transactions", params={"type": "buy"}).json()
        assert listed["total"] == 3 and listed["items"][2]["price"] == "33.33"


def test_price_writes_need_the_admin_scope_or_group(service, issuer):
    body = {"currency": "EUR", "price": "42.5", "as_of": "2024-05-01T00:00:00+02:00"}
    with as_user(service, issuer, "erin") as erin:
        assert_problem(erin.post("/instruments/XYZ/prices", json=body), 403)
    with as_user(service, issuer, "frank", groups=["portfolio-admins"]) as frank:
        created = frank.post("/instruments/XYZ/prices", json=body)
        assert created.status_code == 201
        assert created.json() == {"symbol": "XYZ", "currency": "EUR", "price": "42.5",
                                  "as_of": "2024-04-30T22:00:00Z"}
    with as_user(service, issuer, "erin") as erin:
        assert erin.get("/instruments/XYZ/prices").json()["items"][0]["price"] == "42.5"


def test_lists_are_paginated(service, issuer):
    with as_user(service, issuer, "gina") as gina:
        ids = [new_portfolio(gina, f"P{i}") for i in range(5)]
        page = gina.get("/portfolios", params={"limit": 2, "offset": 2}).json()
        assert page == {"items": page["items"], "total": 5, "limit": 2, "offset": 2}
        assert [p["id"] for p in page["items"]] == ids[2:4]
        assert_problem(gina.get("/portfolios", params={"limit": 0}), 422)


def test_invalid_bodies_get_problem_details(service, issuer):
    with as_user(service, issuer, "hank") as hank:
        pid = new_portfolio(hank)
        cases = [{"type": "buy", "symbol": "ACME", "quantity": "-1", "price": "1"},
                 {"type": "buy", "symbol": "ACME", "quantity": "1"},
                 {"type": "deposit", "amount": "NaN"},
                 {"type": "deposit", "amount": "1", "symbol": "ACME"},
                 {"type": "deposit", "amount": "1", "executed_at": "2024-01-01T00:00:00"},
                 {"type": "buy", "symbol": "acme lower", "quantity": "1", "price": "1"},
                 {"type": "buy", "symbol": "ACME", "quantity": "1" + "0" * 20, "price": "1"}]
        for body in cases:
            problem = assert_problem(hank.post(f"/portfolios/{pid}/transactions", json=body), 422)
            assert problem["errors"], body
        assert_problem(hank.post("/portfolios", json={"name": "x", "currency": "euro"}), 422)
        assert_problem(hank.get("/portfolios/0"), 422)
        assert count_transactions(service, pid) == 0


def test_metrics_use_route_templates_and_count_transactions(service, issuer):
    with as_user(service, issuer, "ivan") as ivan:
        pid = new_portfolio(ivan)
        ivan.post(f"/portfolios/{pid}/transactions", json={"type": "deposit", "amount": "5"})
        ivan.get(f"/portfolios/{pid}")
    text = service.client.get("/metrics").text
    assert 'http_requests_total{method="GET",path="/portfolios/{portfolio_id}",status="200"}' in text
    assert 'http_request_duration_seconds_bucket{le="0.001",method="GET",path="/portfolios/{portfolio_id}"}' in text
    assert f"/portfolios/{pid}\"" not in text
    deposits = [line for line in text.splitlines() if line.startswith('portfolio_transactions_total{type="deposit"}')]
    assert deposits and float(deposits[0].split()[-1]) >= 1
