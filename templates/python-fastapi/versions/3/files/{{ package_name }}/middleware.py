"""What happens to a request before the app reads a byte of its body.

The bearer token is checked first, for every request that a route needing one would handle
(every route but PUBLIC_PATHS): a refused token is a 401 problem, answered without reading the
body. A path no route serves is left to the router (404, token or not). Then the body is capped:
a `Content-Length` over `max_body_bytes` is a 413 problem at once, and a body sent in chunks is
refused (413) as soon as it grows past it, so no request can make the process hold more than that.

The token's claims land in `request.state.claims` for the handlers. Refusals are RFC 9457 problems.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import SERVICE_NAME
from .auth import Authenticator, InvalidToken, KeysUnavailable
from .problems import problem

log = logging.getLogger(__name__)
PUBLIC_PATHS = frozenset({"/healthz", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
MAX_BODY_BYTES = 1024 * 1024


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a chunked body grows past the limit; the app answers 413."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BearerAuthMiddleware:
    def __init__(self, app: ASGIApp, authenticator: Authenticator, routes: Sequence[BaseRoute] = (),
                 public_paths: frozenset[str] = PUBLIC_PATHS, max_body_bytes: int = MAX_BODY_BYTES):
        self.app, self.authenticator, self.public_paths = app, authenticator, public_paths
        self.routes, self.max_body_bytes = routes, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._needs_token(scope) and not await self._authenticated(scope, receive, send):
            return
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            detail = f"the request body is larger than {self.max_body_bytes} bytes"
            await problem(413, detail, instance=scope["path"], headers={"Connection": "close"})(scope, receive, send)
            return
        await self.app(scope, _capped(receive, self.max_body_bytes), send)

    def _needs_token(self, scope: Scope) -> bool:
        """A route that is not public serves this method and path (else: public, 404 or 405, no token)."""
        if scope["path"] in self.public_paths or scope["method"] == "OPTIONS":
            return False
        return any(route.matches(scope)[0] is Match.FULL for route in self.routes)

    async def _authenticated(self, scope: Scope, receive: Receive, send: Send) -> bool:
        authorization = _header(scope, b"authorization")
        try:
            claims = await self.authenticator.authenticate(authorization)
        except InvalidToken as exc:
            challenge = f'Bearer realm="{SERVICE_NAME}"'
            if authorization:
                challenge += f', error="invalid_token", error_description="{exc}"'
            response = problem(401, str(exc), instance=scope["path"], headers={"WWW-Authenticate": challenge})
            await response(scope, receive, send)
            return False
        except KeysUnavailable as exc:
            log.warning("token not checked: %s", exc)
            response = problem(503, "cannot check tokens now: the issuer's keys are unavailable; retry later",
                               instance=scope["path"], headers={"Retry-After": "5"})
            await response(scope, receive, send)
            return False
        scope.setdefault("state", {})["claims"] = claims
        return True


def _capped(receive: Receive, limit: int) -> Receive:
    received = 0

    async def capped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return capped


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
