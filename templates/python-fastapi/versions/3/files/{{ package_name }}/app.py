"""The application: settings, database, token verifier and metrics wired together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from . import SERVICE_NAME, __version__, problems
from .auth import Authenticator
from .config import Settings
from .db import UNAVAILABLE, Database
from .handlers import router
from .metrics import Metrics, MetricsMiddleware
from .middleware import BearerAuthMiddleware

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    db = Database(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await db.open()
        # in the background: the service answers (503 on /healthz) while its database is away
        migration = asyncio.create_task(_migrate(db))
        try:
            yield
        finally:
            migration.cancel()
            await asyncio.gather(migration, return_exceptions=True)
            await db.close()

    # no redirect from `/healthz/` to `/healthz`: a path no route serves is a 404, token or not
    app = FastAPI(title=SERVICE_NAME, version=__version__, lifespan=lifespan, redirect_slashes=False)
    app.state.settings, app.state.db, app.state.metrics = settings, db, Metrics()
    problems.install(app)  # every error is an RFC 9457 problem (application/problem+json)
    app.include_router(router)
    for error in UNAVAILABLE:
        app.add_exception_handler(error, _database_unavailable)  # type: ignore[arg-type]
    # the token, then the body's size, before the app reads the body (app.routes: the docs' too)
    app.add_middleware(BearerAuthMiddleware, authenticator=Authenticator(settings), routes=app.routes,
                       max_body_bytes=settings.max_body_bytes)
    # outermost, so it also counts and times the requests the auth middleware refuses
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics, routes=[*router.routes, *app.routes])
    return app


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", exc)
    return problems.problem(503, "the database is unavailable; retry later", instance=request.url.path,
                            headers={"Retry-After": "5"})


async def _migrate(db: Database) -> None:
    try:
        await db.migrate()
    except UNAVAILABLE as exc:
        log.warning("database not reachable at start-up (%s); migrations will run when it is", exc)
    except Exception:
        log.exception("migrations failed; /healthz reports 503 until they pass")
