"""Prometheus metrics, the names every service of the ecosystem exposes (the dashboards query them):
`http_requests_total{method,path,status}` and `http_request_duration_seconds{method,path}`,
where `path` is the route template (`/items/{item_id}`), never the raw URL. Prometheus's own
scrapes of /metrics are not counted: they are not the service's traffic.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"
METRICS_PATH = "/metrics"
BUCKETS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192)
"""The bounds of http_request_duration_seconds, the same in every service of the ecosystem: 1 ms
doubling to 8.192 s (loopback latencies resolve), none a whole number, so each `le` label reads the
same from every client library (Python writes 1.0 as "1.0", Go as "1")."""


class Metrics:
    """One registry per app, so tests can build several apps in one process."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.requests = Counter("http_requests_total", "HTTP requests handled.",
                                ["method", "path", "status"], registry=self.registry)
        self.duration = Histogram("http_request_duration_seconds", "Time to handle an HTTP request.",
                                  ["method", "path"], buckets=BUCKETS, registry=self.registry)
        self.items_created = Counter("items_created_total", "Items created (an example business metric).",
                                     registry=self.registry)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts and times every HTTP request but the scrapes of /metrics. `routes` (the app's, the
    documentation's included) label the requests stopped before routing (a 401 from the auth
    middleware) with the route they were meant for."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute] = ()):
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            path = route_template(scope, self.routes)
            self.metrics.duration.labels(scope["method"], path).observe(time.perf_counter() - start)
            self.metrics.requests.labels(scope["method"], path, str(status)).inc()


def route_template(scope: Scope, routes: Sequence[BaseRoute]) -> str:
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
