"""Prometheus metrics: the names every ecoctl service exposes, plus the business counters.

`http_requests_total{method,path,status}` and `http_request_duration_seconds{method,path}`, where
`path` is the route template (`/portfolios/{portfolio_id}`), "unmatched" for paths no route serves.
Prometheus's own scrapes of /metrics are not counted: they are not the service's traffic.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.routing import BaseRoute, Match

UNMATCHED = "unmatched"
METRICS_PATH = "/metrics"
BUCKETS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192)
"""The bounds of http_request_duration_seconds, the same in every service of the ecosystem: 1 ms
doubling to 8.192 s (loopback latencies resolve), none a whole number, so each `le` label reads the
same from every client library (Python writes 1.0 as "1.0", Go as "1")."""


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("http_requests_total", "HTTP requests by route template and status",
                                ["method", "path", "status"], registry=self.registry)
        self.duration = Histogram("http_request_duration_seconds", "HTTP request duration by route template",
                                  ["method", "path"], buckets=BUCKETS, registry=self.registry)
        self.transactions = Counter("portfolio_transactions_total", "Transactions recorded, by type",
                                    ["type"], registry=self.registry)
        self.portfolios = Counter("portfolio_portfolios_created_total", "Portfolios created",
                                  registry=self.registry)
        self.refused_sells = Counter("portfolio_sells_refused_total",
                                     "Sells refused because they exceed the quantity held", registry=self.registry)
        for kind in ("buy", "sell", "dividend", "deposit", "withdrawal"):
            self.transactions.labels(kind)


class MetricsMiddleware:
    """Counts and times every HTTP request but the scrapes of /metrics under its route template
    (`/portfolios/{portfolio_id}`); `routes` (the app's, the documentation's included) label the
    requests the gate refuses before routing with the route they were meant for."""

    def __init__(self, app, metrics: Metrics, routes: Sequence[BaseRoute] = ()):
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = route_template(scope, self.routes)
            method = scope["method"]
            self.metrics.requests.labels(method, path, str(status)).inc()
            self.metrics.duration.labels(method, path).observe(time.perf_counter() - started)


def route_template(scope, routes: Sequence[BaseRoute]) -> str:
    """The path template of the route that handled the request, or of the first of `routes` that
    matches it; UNMATCHED for paths no route serves (so scanners cannot blow up the label set)."""
    route = scope.get("route")
    if isinstance(getattr(route, "path", None), str):
        return route.path
    partial = UNMATCHED
    for candidate in routes:
        path = getattr(candidate, "path", None)
        if not isinstance(path, str):
            continue  # e.g. FastAPI's wrapper of an included router: its routes are in `routes` too
        match, _ = candidate.matches(scope)
        if match is Match.FULL:
            return path
        if match is Match.PARTIAL and partial == UNMATCHED:
            partial = path
    return partial
