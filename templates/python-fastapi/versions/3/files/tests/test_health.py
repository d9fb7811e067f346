"""/healthz reports the database: 503 (a problem) while it does not answer."""

from __future__ import annotations

from conftest import assert_problem


def test_health_is_503_without_database(client):
    response = client.get("/healthz")
    assert assert_problem(response, 503)["database"] == "unavailable"


def test_openapi_lists_the_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/me", "/items", "/items/{item_id}"} <= set(paths)
