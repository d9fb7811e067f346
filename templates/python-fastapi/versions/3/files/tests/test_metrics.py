"""/metrics: the names and labels the ecosystem's dashboards query."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from conftest import bearer


def samples(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_metrics_count_requests_by_route_template(client, key):
    token = bearer(key.token())
    for _ in range(2):
        assert client.get("/me", headers=token).status_code == 200
    assert client.get("/items/42").status_code == 401  # stopped by the auth middleware, before routing
    assert client.get("/no/such/path", headers=token).status_code == 404

    found = samples(client)
    assert found[("http_requests_total", frozenset({"method": "GET", "path": "/me", "status": "200"}.items()))] == 2
    assert found[("http_requests_total",
                  frozenset({"method": "GET", "path": "/items/{item_id}", "status": "401"}.items()))] == 1
    assert found[("http_requests_total",
                  frozenset({"method": "GET", "path": "unmatched", "status": "404"}.items()))] == 1
    assert found[("http_request_duration_seconds_count", frozenset({"method": "GET", "path": "/me"}.items()))] == 2
    assert ("http_request_duration_seconds_bucket",
            frozenset({"method": "GET", "path": "/items/{item_id}", "le": "+Inf"}.items())) in found
    assert not any("42" in dict(labels).get("path", "") for _, labels in found)


def test_scrapes_are_not_counted_and_the_docs_are_labelled_by_route(client):
    assert client.get("/openapi.json").status_code == 200
    client.get("/metrics")
    found = samples(client)
    assert not any(dict(labels).get("path") == "/metrics" for _, labels in found)
    assert found[("http_requests_total",
                  frozenset({"method": "GET", "path": "/openapi.json", "status": "200"}.items()))] == 1


def test_latency_buckets_start_at_a_millisecond(client):
    client.get("/healthz")
    text = client.get("/metrics").text
    bounds = [line.split('le="')[1].split('"')[0] for line in text.splitlines()
              if line.startswith("http_request_duration_seconds_bucket{") and 'path="/healthz"' in line]
    assert bounds[:3] == ["0.001", "0.002", "0.004"] and bounds[-1] == "+Inf"
    assert not any(bound.endswith(".0") for bound in bounds)  # the same `le` as Go's client writes


def test_metrics_need_no_token(client):
    assert "http_requests_total" in client.get("/metrics").text
