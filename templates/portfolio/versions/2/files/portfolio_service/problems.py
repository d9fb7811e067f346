"""Error responses as RFC 9457 problem details (`application/problem+json`)."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import OperationalError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("portfolio_service")


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict] | None = None


class ProblemError(Exception):
    def __init__(self, status: int, detail: str | None = None, *, title: str | None = None,
                 type: str = "about:blank", headers: dict[str, str] | None = None, **extra):
        super().__init__(detail or title)
        self.status, self.detail, self.type, self.headers, self.extra = status, detail, type, headers, extra
        self.title = title or HTTPStatus(status).phrase


def problem_response(request: Request, status: int, *, title: str | None = None, detail: str | None = None,
                     type: str = "about:blank", headers: dict[str, str] | None = None, **extra) -> JSONResponse:
    body = {"type": type, "title": title or HTTPStatus(status).phrase, "status": status}
    if detail:
        body["detail"] = detail
    body["instance"] = request.url.path
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


async def on_problem(request: Request, exc: ProblemError) -> JSONResponse:
    return problem_response(request, exc.status, title=exc.title, detail=exc.detail, type=exc.type,
                            headers=exc.headers, **exc.extra)


async def on_http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else None
    if detail == HTTPStatus(exc.status_code).phrase:
        detail = None
    return problem_response(request, exc.status_code, detail=detail, headers=getattr(exc, "headers", None))


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in exc.errors()]
    return problem_response(request, 422, title="Invalid request",
                            detail="the request does not match the API schema", errors=errors)


async def on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database is away (connection refused or lost, no connection within the pool's timeout)."""
    log.warning("database unavailable: %s", exc)
    return problem_response(request, 503, detail="the database is unavailable; retry later",
                            headers={"Retry-After": "5"})


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(request, 500, detail="an unexpected error occurred; it has been logged")


def install(app) -> None:
    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(OperationalError, on_database_unavailable)  # PoolTimeout is one too
    app.add_exception_handler(Exception, on_unexpected)


def responses(*statuses: int) -> dict:
    """OpenAPI `responses` entries for the problem statuses an operation can return."""
    return {status: {"description": HTTPStatus(status).phrase,
                     "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for status in statuses}


def add_schema(openapi: dict) -> dict:
    """Document every error as a problem: the Problem schema, and 422s in place of FastAPI's default body."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            if "422" in operation.get("responses", {}):
                operation["responses"]["422"] = responses(422)[422]
            if "requestBody" in operation:  # a body that is not JSON at all
                operation["responses"]["400"] = responses(400)[400]
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return openapi
