"""Property-based run of the Portfolio Manager's own OpenAPI against the served app: no 5xx, responses as documented."""

from __future__ import annotations


import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)


from portfolio_service.app import create_app  # noqa: E402
from portfolio_service.testing import TokenIssuer, provisioned_settings, serve_app  # noqa: E402

DB = "portfolio_fuzz_test_db"
OWNER = DB.removesuffix("_db") + "_user"  # not portfolio_user: ecosystems on this server make that one
ISSUER = TokenIssuer()


@pytest.fixture(scope="module")
def served(pg, tmp_path_factory):
    config = provisioned_settings(pg, DB, ISSUER, tmp_path_factory.mktemp("jwks"), owner=OWNER)
    with serve_app(create_app(config)) as url:
        yield url


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def seeded_portfolio(url: str, headers: dict[str, str]) -> int:
    """A portfolio with cash, a holding of ACME and a price, so generated sells and valuations do real work."""
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        pid = client.post("/portfolios", json={"name": "fuzzed", "currency": "EUR"}).json()["id"]
        for body in ({"type": "deposit", "amount": "1000"},
                     {"type": "buy", "symbol": "ACME", "quantity": "10", "price": "12.5", "fee": "1"},
                     {"type": "dividend", "symbol": "ACME", "amount": "3"}):
            assert client.post(f"/portfolios/{pid}/transactions", json=body).status_code == 201
        client.post("/instruments/ACME/prices", json={"currency": "EUR", "price": "13"})
    return pid


def fuzz(url: str, headers: dict[str, str] | None, max_examples: int) -> list[str]:
    """Run every operation of the served OpenAPI with generated inputs (valid and invalid); return their labels.

    Operations on a portfolio get, besides generated ids, the id of a real portfolio of the caller.
    """
    api = schemathesis.openapi.from_url(f"{url}/openapi.json")
    fuzzed = []
    for result in api.get_all_operations():
        operation = result.ok()
        strategies = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
        if headers and "{portfolio_id}" in operation.path:
            pid = seeded_portfolio(url, headers)
            strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters={"portfolio_id": pid}))
            strategies.append(operation.as_strategy(GenerationMode.NEGATIVE, path_parameters={"portfolio_id": pid}))

        @given(case=st.one_of(strategies))
        @settings(max_examples=max_examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        run()
        fuzzed.append(operation.label)
    return fuzzed


def test_no_server_errors_as_an_admin(served):
    fuzzed = fuzz(served, ISSUER.headers("fuzz-admin", groups=["portfolio-admins"]), max_examples=30)
    assert "GET /portfolios/{portfolio_id}/valuation" in fuzzed and len(fuzzed) >= 10


def test_no_server_errors_without_a_token(served):
    fuzz(served, None, max_examples=5)
