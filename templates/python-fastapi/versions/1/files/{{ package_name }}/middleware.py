"""Bearer-token middleware: every request outside PUBLIC_PATHS needs a valid access token.

The token's claims land in `request.state.claims` for the handlers.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from . import SERVICE_NAME
from .auth import KeysUnavailable, TokenError, TokenVerifier

PUBLIC_PATHS = frozenset({"/healthz", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})


class BearerAuthMiddleware:
    def __init__(self, app: ASGIApp, verifier: TokenVerifier, public_paths: frozenset[str] = PUBLIC_PATHS):
        self.app, self.verifier, self.public_paths = app, verifier, public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        token = _bearer_token(scope)
        if token is None:
            await _unauthorized("missing bearer token", error=None)(scope, receive, send)
            return
        try:
            claims = await self.verifier.verify(token)
        except TokenError as exc:
            await _unauthorized(str(exc), error="invalid_token")(scope, receive, send)
            return
        except KeysUnavailable:
            await JSONResponse({"detail": "cannot check tokens now: the issuer's keys are unavailable"},
                               status_code=503, headers={"Retry-After": "5"})(scope, receive, send)
            return
        scope.setdefault("state", {})["claims"] = claims
        await self.app(scope, receive, send)


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _unauthorized(reason: str, error: str | None) -> JSONResponse:
    challenge = f'Bearer realm="{SERVICE_NAME}"'
    if error:
        challenge += f', error="{error}", error_description="{reason}"'
    return JSONResponse({"detail": reason}, status_code=401, headers={"WWW-Authenticate": challenge})
