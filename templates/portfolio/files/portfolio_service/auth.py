"""Bearer tokens: signature checked against the issuer's JWKS, then `iss`, `aud`, `exp` and `sub`.

Our own issuer and audience (OIDC_ISSUER, OIDC_AUDIENCE), or exactly one of the (issuer, audience)
pairs of OIDC_ACCEPTED_CLIENTS (the web apps granted this API, whose tokens Authentik issues under
their own issuer), each issuer's token checked against that issuer's own JWKS.

The key set is cached and fetched again when a token names an unknown `kid` (key rotation),
at most once per `jwks_min_refresh_seconds`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from .settings import Settings

ALGORITHMS = {"RSA": ["RS256", "RS384", "RS512"], "EC": ["ES256", "ES384", "ES512"]}


class InvalidToken(Exception):
    """The request is not authenticated (→ 401)."""


class KeysUnavailable(Exception):
    """The key set could not be read (→ 503)."""


@dataclass(frozen=True)
class Principal:
    sub: str
    scopes: frozenset[str]
    groups: frozenset[str]
    claims: dict

    def is_admin(self, settings: Settings) -> bool:
        return settings.admin_scope in self.scopes or settings.admin_group in self.groups


class KeySet:
    def __init__(self, settings: Settings, url: str | None = None):
        self.settings = settings
        self.url = url
        """Another issuer's JWKS URL (an accepted web app's); None: ours (`jwks_source`)."""
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str | None) -> jwt.PyJWK:
        now = time.monotonic()
        if now - self._fetched_at > self.settings.jwks_cache_seconds:
            await self._refresh()
        elif self._lookup(kid) is None and now - self._fetched_at > self.settings.jwks_min_refresh_seconds:
            await self._refresh()
        key = self._lookup(kid)
        if key is None:
            raise InvalidToken("the token is signed with a key the issuer does not publish")
        return key

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._fetched_at <= self.settings.jwks_min_refresh_seconds:
                return  # another request refreshed it meanwhile
            document = await self._fetch()
            keys = {}
            for data in document.get("keys", []):
                if data.get("use", "sig") != "sig" or data.get("kty") not in ALGORITHMS:
                    continue
                try:
                    keys[data.get("kid")] = jwt.PyJWK(data)
                except (jwt.PyJWKError, jwt.InvalidKeyError):
                    continue
            self._keys = keys
            self._fetched_at = time.monotonic()

    async def _fetch(self) -> dict:
        if self.settings.oidc_jwks_file and self.url is None:
            try:
                return json.loads(Path(self.settings.oidc_jwks_file).read_text())
            except (OSError, ValueError) as exc:
                raise KeysUnavailable(f"cannot read the JWKS file: {exc}") from exc
        import httpx

        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.get(self.url or self.settings.jwks_source)
                response.raise_for_status()
                return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise KeysUnavailable(f"cannot fetch the JWKS from the issuer: {exc}") from exc


class Authenticator:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.keys = KeySet(settings)
        self.accepted = {issuer: (audience, KeySet(settings, url)) for issuer, audience, url in settings.oidc_accepted
                         if issuer != settings.oidc_issuer}

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise InvalidToken("a bearer token is required")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("the Authorization header must be `Bearer <token>`")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
            named = jwt.decode(token, options={"verify_signature": False}).get("iss") if self.accepted else None
        except jwt.PyJWTError as exc:
            raise InvalidToken("the token is not a JWT") from exc
        issuer, audience, keys = self.settings.oidc_issuer, self.settings.oidc_audience, self.keys
        if isinstance(named, str) and named in self.accepted:  # a web app granted this API
            issuer, (audience, keys) = named, self.accepted[named]
        key = await keys.key_for(header.get("kid"))
        try:
            claims = jwt.decode(
                token, key.key, algorithms=ALGORITHMS[key.key_type],
                audience=audience, issuer=issuer,
                leeway=self.settings.token_leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("the token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken("the token is from another issuer") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("the token is invalid") from exc
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise InvalidToken("the token has no subject")
        return Principal(sub=sub, scopes=frozenset(_strings(claims.get("scope"))),
                         groups=frozenset(_strings(claims.get("groups"))), claims=claims)


def _strings(value) -> list[str]:
    """A space-separated string or a list of strings."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []
