"""What happens to a request before the app reads a byte of its body.

The bearer token is checked first, for every request that a route needing one would handle
(every route but PUBLIC_PATHS): a refused token is a 401 problem, answered without reading the
body (the principal is kept in `request.state.principal` for `handlers.current_user`). A path no
route serves is left to the router (404, token or not). Then the body is capped: a
`Content-Length` over `max_body_bytes` is a 413 problem at once, and a body sent in chunks is
refused (413) as soon as it grows past it, so no request can make the process hold more than that.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import Authenticator, InvalidToken, KeysUnavailable
from .problems import problem_response

log = logging.getLogger("portfolio_service")
PUBLIC_PATHS = frozenset({"/healthz", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a chunked body grows past the limit; the app answers 413."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than {limit} bytes")


class Gate:
    def __init__(self, app: ASGIApp, authenticator: Authenticator, routes: Sequence[BaseRoute],
                 max_body_bytes: int):
        self.app, self.authenticator, self.routes, self.max_body_bytes = app, authenticator, routes, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._needs_token(scope) and not await self._authenticated(scope, receive, send):
            return
        length = Request(scope).headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            response = problem_response(Request(scope), 413, headers={"Connection": "close"},
                                        detail=f"the request body is larger than {self.max_body_bytes} bytes")
            await response(scope, receive, send)
            return
        await self.app(scope, _capped(receive, self.max_body_bytes), send)

    def _needs_token(self, scope: Scope) -> bool:
        """A route that is not public serves this method and path (else: public, 404 or 405, no token)."""
        if scope["path"] in PUBLIC_PATHS or scope["method"] == "OPTIONS":
            return False
        return any(route.matches(scope)[0] is Match.FULL for route in self.routes)

    async def _authenticated(self, scope: Scope, receive: Receive, send: Send) -> bool:
        request = Request(scope)
        authorization = request.headers.get("authorization")
        try:
            principal = await self.authenticator.authenticate(authorization)
        except InvalidToken as exc:
            challenge = 'Bearer error="invalid_token"' if authorization else "Bearer"
            response = problem_response(request, 401, detail=str(exc), headers={"WWW-Authenticate": challenge})
            await response(scope, receive, send)
            return False
        except KeysUnavailable as exc:
            log.warning("token not checked: %s", exc)
            response = problem_response(request, 503, headers={"Retry-After": "5"},
                                        detail="the identity provider's signing keys are unavailable; retry later")
            await response(scope, receive, send)
            return False
        scope.setdefault("state", {})["principal"] = principal
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
