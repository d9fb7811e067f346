"""/healthz reports the database: 503 while it does not answer."""

from __future__ import annotations


def test_health_is_503_without_database(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"


def test_openapi_lists_the_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/me", "/items", "/items/{item_id}"} <= set(paths)
