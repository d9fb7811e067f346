"""HTTP handlers. Everything but /healthz and /metrics needs a bearer token (see middleware.py)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from . import SERVICE_NAME, models
from .db import UNAVAILABLE, Database
from .problems import problem

log = logging.getLogger(__name__)
router = APIRouter()
_bearer = HTTPBearer(auto_error=False, description="an access token from the OIDC issuer")


def claims(request: Request, _: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> dict[str, Any]:
    """The verified token's claims (the middleware put them there)."""
    return request.state.claims


def database(request: Request) -> Database:
    return request.app.state.db


@router.get("/healthz", tags=["operations"])
async def healthz(db: Database = Depends(database)) -> JSONResponse:
    try:
        await db.check()
    except UNAVAILABLE as exc:
        log.warning("health check: database unavailable: %s", exc)
        return _unhealthy("unavailable")
    except Exception:  # e.g. a failing migration: unhealthy, details in the log only
        log.exception("health check failed")
        return _unhealthy("error")
    return JSONResponse({"status": "ok", "service": SERVICE_NAME, "database": "ok"})


def _unhealthy(database: str) -> JSONResponse:
    detail = "the database does not answer" if database == "unavailable" else "the health check failed"
    return problem(503, detail, instance="/healthz", service=SERVICE_NAME, database=database)


@router.get("/metrics", tags=["operations"], include_in_schema=False)
async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.exposition()
    return Response(body, media_type=content_type)


@router.get("/me")
async def me(token: dict[str, Any] = Depends(claims)) -> dict[str, Any]:
    """Who the token says the caller is."""
    return {key: token[key] for key in ("sub", "iss", "aud", "exp", "email", "preferred_username")
            if key in token}


@router.get("/items", response_model=list[models.Item])
async def list_items(token: dict[str, Any] = Depends(claims), db: Database = Depends(database)):
    async with db.connection() as conn:
        return await models.list_items(conn, token["sub"])


@router.post("/items", response_model=models.Item, status_code=201)
async def create_item(item: models.ItemIn, request: Request, token: dict[str, Any] = Depends(claims),
                      db: Database = Depends(database)):
    async with db.connection() as conn:
        created = await models.create_item(conn, token["sub"], item)
    request.app.state.metrics.items_created.inc()
    return created


@router.get("/items/{item_id}", response_model=models.Item)
async def get_item(item_id: int, token: dict[str, Any] = Depends(claims), db: Database = Depends(database)):
    async with db.connection() as conn:
        item = await models.get_item(conn, token["sub"], item_id)
    if item is None:
        raise HTTPException(404, "no such item")
    return item
