"""Bearer tokens: the signature checked against the issuer's JWKS, then `iss`, `aud`, `exp` and a
non-empty `sub` (the same checks as every service of the ecosystem).

The issuer's public keys (its JWKS) are fetched once and cached; a token signed with a key id the
cache does not know triggers one refetch (the issuer rotated its key), at most every
`jwks_min_refresh_interval` seconds. Only asymmetric algorithms are accepted: `none`, and HS256
with the public key as the secret, are refused before any key is looked at.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from typing import Any

import jwt

from .config import Settings

log = logging.getLogger(__name__)
ALGORITHMS = {"RSA": ["RS256", "RS384", "RS512"], "EC": ["ES256", "ES384", "ES512"]}
ACCEPTED = frozenset(alg for algs in ALGORITHMS.values() for alg in algs)
RETRY_AFTER_FAILURE = 2.0
"""Seconds before fetching again after a failed fetch, so an issuer outage does not stall every request."""


class InvalidToken(Exception):
    """Why a token was refused (→ 401); safe to tell the client."""


class KeysUnavailable(Exception):
    """The issuer's keys could not be fetched and none are cached (→ 503)."""


class KeySet:
    """The issuer's signing keys, from its JWKS URL or a JWKS file, cached."""

    def __init__(self, *, url: str | None = None, file: str | None = None, max_age: float = 300.0,
                 min_refresh_interval: float = 10.0, timeout: float = 5.0):
        if not (url or file):
            raise ValueError("KeySet needs a url or a file")
        self.url, self.file = url, file
        self.max_age, self.min_refresh_interval, self.timeout = max_age, min_refresh_interval, timeout
        self.fetches = 0
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at = self._failed_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str | None) -> jwt.PyJWK:
        if time.monotonic() - self._fetched_at > self.max_age:
            await self._refresh(self._fetched_at)
        key = self._lookup(kid)
        if key is None and time.monotonic() - self._fetched_at >= self.min_refresh_interval:
            await self._refresh(self._fetched_at)
            key = self._lookup(kid)
        if key is None:
            raise InvalidToken("the token is signed with a key the issuer does not publish")
        return key

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _refresh(self, seen: float) -> None:
        async with self._lock:
            if self._fetched_at != seen:  # another request refreshed while this one waited
                return
            if time.monotonic() - self._failed_at < RETRY_AFTER_FAILURE:
                if not self._keys:
                    raise KeysUnavailable("the last fetch failed moments ago")
                return
            try:
                keys = _parse(await asyncio.to_thread(self._fetch))
            except (OSError, ValueError) as exc:
                self._failed_at = time.monotonic()
                log.warning("cannot fetch the issuer's keys from %s: %s", self.url or self.file, exc)
                if not self._keys:
                    raise KeysUnavailable(str(exc)) from None
                return  # keep serving with the keys already known
            self._keys = keys
            self._fetched_at = time.monotonic()
            self.fetches += 1

    def _fetch(self) -> Any:
        if self.file:
            with open(self.file, encoding="utf-8") as handle:
                return json.load(handle)
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.load(response)


def _parse(document: Any) -> dict[str | None, jwt.PyJWK]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("the JWKS document has no `keys` list")
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") not in ALGORITHMS or entry.get("use", "sig") != "sig":
            continue
        try:
            keys[entry.get("kid")] = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
            log.warning("skipping JWKS key %s: %s", entry.get("kid"), exc)
    return keys


class Authenticator:
    def __init__(self, settings: Settings):
        self.issuer, self.audience, self.leeway = settings.issuer, settings.audience, settings.leeway
        self.keys = KeySet(url=settings.jwks_url, file=settings.jwks_file, max_age=settings.jwks_max_age,
                           min_refresh_interval=settings.jwks_min_refresh_interval)

    async def authenticate(self, authorization: str | None) -> dict[str, Any]:
        """The claims of the `Authorization: Bearer <token>` header's token, once its signature,
        issuer, audience, expiry and subject check out; else InvalidToken (or KeysUnavailable)."""
        if not authorization:
            raise InvalidToken("a bearer token is required")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("the Authorization header must be `Bearer <token>`")
        return await self.verify(token.strip())

    async def verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidToken("the token is not a JWT") from None
        if header.get("alg") not in ACCEPTED:
            raise InvalidToken(f"unsupported signing algorithm {header.get('alg')!r}")
        key = await self.keys.key_for(header.get("kid"))
        try:
            claims = jwt.decode(token, key.key, algorithms=ALGORITHMS[key.key_type], audience=self.audience,
                                issuer=self.issuer, leeway=self.leeway,
                                options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad token signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidTokenError:
            raise InvalidToken("the token is invalid") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidToken("the token has no subject")
        return claims
