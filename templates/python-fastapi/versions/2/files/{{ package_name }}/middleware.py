"""Bearer-token middleware: every request outside PUBLIC_PATHS needs a valid access token.

The token's claims land in `request.state.claims` for the handlers. Refusals are RFC 9457 problems.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from . import SERVICE_NAME
from .auth import Authenticator, InvalidToken, KeysUnavailable
from .problems import problem

log = logging.getLogger(__name__)
PUBLIC_PATHS = frozenset({"/healthz", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})


class BearerAuthMiddleware:
    def __init__(self, app: ASGIApp, authenticator: Authenticator, public_paths: frozenset[str] = PUBLIC_PATHS):
        self.app, self.authenticator, self.public_paths = app, authenticator, public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        authorization = _header(scope, b"authorization")
        try:
            claims = await self.authenticator.authenticate(authorization)
        except InvalidToken as exc:
            challenge = f'Bearer realm="{SERVICE_NAME}"'
            if authorization:
                challenge += f', error="invalid_token", error_description="{exc}"'
            response = problem(401, str(exc), instance=scope["path"], headers={"WWW-Authenticate": challenge})
            await response(scope, receive, send)
            return
        except KeysUnavailable as exc:
            log.warning("token not checked: %s", exc)
            response = problem(503, "cannot check tokens now: the issuer's keys are unavailable; retry later",
                               instance=scope["path"], headers={"Retry-After": "5"})
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["claims"] = claims
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
