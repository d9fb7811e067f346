"""Error responses as RFC 9457 problem details (`application/problem+json`): every error this
service answers — 401, 404, 422, 500, 503 — has `type`, `title`, `status` (and `detail` when there
is more to say, `instance` = the request path)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

MEDIA_TYPE = "application/problem+json"


class ProblemError(Exception):
    """Raise it from a handler to answer with a problem (`status`, `detail`, extension members)."""

    def __init__(self, status: int, detail: str | None = None, *, title: str | None = None,
                 type: str = "about:blank", headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail or title)
        self.status, self.detail, self.type, self.headers, self.extra = status, detail, type, headers, extra
        self.title = title or HTTPStatus(status).phrase


def problem(status: int, detail: str | None = None, *, instance: str | None = None, title: str | None = None,
            type: str = "about:blank", headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": type, "title": title or HTTPStatus(status).phrase, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update({key: value for key, value in extra.items() if value is not None})
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


async def on_problem(request: Request, exc: ProblemError) -> JSONResponse:
    return problem(exc.status, exc.detail, instance=request.url.path, title=exc.title, type=exc.type,
                   headers=exc.headers, **exc.extra)


async def on_http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else None
    if detail == HTTPStatus(exc.status_code).phrase:
        detail = None
    return problem(exc.status_code, detail, instance=request.url.path, headers=getattr(exc, "headers", None))


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in exc.errors()]
    return problem(422, "the request does not match the API schema", instance=request.url.path,
                   title="Invalid request", errors=errors)


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    return problem(500, "an unexpected error occurred; it has been logged", instance=request.url.path)


def install(app) -> None:
    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)
