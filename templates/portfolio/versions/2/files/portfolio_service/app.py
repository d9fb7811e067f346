"""The application factory: `create_app(settings)` builds a complete service (tests pass settings in code)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from . import __version__, problems
from .auth import Authenticator
from .db import make_pool
from .gate import Gate
from .handlers import router
from .metrics import Metrics, MetricsMiddleware
from .migrations import migrate
from .settings import Settings

log = logging.getLogger("portfolio_service")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.run_migrations:
            applied = await asyncio.to_thread(migrate, settings.conninfo())
            if applied:
                log.info("applied migrations %s", ", ".join(applied))
        pool = make_pool(settings)
        await pool.open(wait=True, timeout=30.0)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    # no redirect from `/healthz/` to `/healthz`: a path no route serves is a 404, token or not
    app = FastAPI(title="Portfolio Manager", version=__version__, lifespan=lifespan, redirect_slashes=False,
                  description="Portfolios, their transactions, holdings and valuation. "
                              "Amounts are exact decimal strings; errors are RFC 9457 problem details.")
    metrics = Metrics()
    app.state.settings = settings
    app.state.auth = Authenticator(settings)
    app.state.metrics = metrics
    problems.install(app)
    app.include_router(router)
    # the token, then the body's size, before the app reads the body (app.routes: the docs' too)
    app.add_middleware(Gate, authenticator=app.state.auth, routes=app.routes, max_body_bytes=settings.max_body_bytes)
    # outermost: counts the refused too, under the route they were meant for
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=[*router.routes, *app.routes])

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            app.openapi_schema = problems.add_schema(schema)
        return app.openapi_schema

    app.openapi = openapi
    return app
