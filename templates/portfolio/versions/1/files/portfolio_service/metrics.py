"""Prometheus metrics: the names every ecoctl service exposes, plus the business counters."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("http_requests_total", "HTTP requests by route template and status",
                                ["method", "path", "status"], registry=self.registry)
        self.duration = Histogram("http_request_duration_seconds", "HTTP request duration by route template",
                                  ["method", "path"], registry=self.registry)
        self.transactions = Counter("portfolio_transactions_total", "Transactions recorded, by type",
                                    ["type"], registry=self.registry)
        self.portfolios = Counter("portfolio_portfolios_created_total", "Portfolios created",
                                  registry=self.registry)
        self.refused_sells = Counter("portfolio_sells_refused_total",
                                     "Sells refused because they exceed the quantity held", registry=self.registry)
        for kind in ("buy", "sell", "dividend", "deposit", "withdrawal"):
            self.transactions.labels(kind)


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template (`/portfolios/{portfolio_id}`)."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
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
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, path, str(status)).inc()
            self.metrics.duration.labels(method, path).observe(time.perf_counter() - started)
