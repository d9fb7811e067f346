"""Prometheus metrics, the names every service of the ecosystem exposes (the dashboards query them):
`http_requests_total{method,path,status}` and `http_request_duration_seconds{method,path}`,
where `path` is the route template (`/items/{item_id}`), never the raw URL.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"


class Metrics:
    """One registry per app, so tests can build several apps in one process."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.requests = Counter("http_requests_total", "HTTP requests handled.",
                                ["method", "path", "status"], registry=self.registry)
        self.duration = Histogram("http_request_duration_seconds", "Time to handle an HTTP request.",
                                  ["method", "path"], registry=self.registry)
        self.items_created = Counter("items_created_total", "Items created (an example business metric).",
                                     registry=self.registry)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts and times every HTTP request. `routes` label the requests stopped before routing (a 401
    from the auth middleware) with the route they were meant for."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute] = ()):
        self.app, self.metrics, self.routes = app, metrics, list(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
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
        match, _ = candidate.matches(scope)
        if match is Match.FULL:
            return getattr(candidate, "path", UNMATCHED)
        if match is Match.PARTIAL and partial == UNMATCHED:
            partial = getattr(candidate, "path", UNMATCHED)
    return partial
