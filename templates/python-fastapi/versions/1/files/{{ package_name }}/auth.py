"""Bearer tokens: RS256 JWTs signed by the OIDC issuer.

The issuer's public keys (its JWKS) are fetched once and cached; a token signed with a key id the
cache does not know triggers one refetch (the issuer rotated its key), at most every
`jwks_min_refresh_interval` seconds.
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
ALGORITHMS = ["RS256"]
RETRY_AFTER_FAILURE = 2.0
"""Seconds before fetching again after a failed fetch, so an issuer outage does not stall every request."""


class TokenError(Exception):
    """Why a token was refused; safe to tell the client."""


class KeysUnavailable(Exception):
    """The issuer's keys could not be fetched and none are cached."""


class JwksCache:
    def __init__(self, *, url: str | None = None, file: str | None = None, max_age: float = 300.0,
                 min_refresh_interval: float = 10.0, timeout: float = 5.0):
        if not (url or file):
            raise ValueError("JwksCache needs a url or a file")
        self.url, self.file = url, file
        self.max_age, self.min_refresh_interval, self.timeout = max_age, min_refresh_interval, timeout
        self.fetches = 0
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at = self._failed_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        if time.monotonic() - self._fetched_at > self.max_age:
            await self._refresh(self._fetched_at)
        key = self._lookup(kid)
        if key is None and time.monotonic() - self._fetched_at >= self.min_refresh_interval:
            await self._refresh(self._fetched_at)
            key = self._lookup(kid)
        if key is None:
            raise TokenError("token signed with an unknown key")
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
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        try:
            keys[entry.get("kid")] = jwt.PyJWK(entry, algorithm="RS256")
        except jwt.PyJWKError as exc:
            log.warning("skipping JWKS key %s: %s", entry.get("kid"), exc)
    return keys


class TokenVerifier:
    def __init__(self, settings: Settings):
        self.issuer, self.audience, self.leeway = settings.issuer, settings.audience, settings.leeway
        self.keys = JwksCache(url=settings.jwks_url, file=settings.jwks_file, max_age=settings.jwks_max_age,
                              min_refresh_interval=settings.jwks_min_refresh_interval)

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, once signature, issuer, audience and expiry check out."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenError("malformed token") from None
        if header.get("alg") not in ALGORITHMS:
            raise TokenError(f"unsupported signing algorithm {header.get('alg')!r}")
        key = await self.keys.key(header.get("kid"))
        try:
            return jwt.decode(token, key.key, algorithms=ALGORITHMS, audience=self.audience,
                              issuer=self.issuer, leeway=self.leeway,
                              options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.InvalidAudienceError:
            raise TokenError("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise TokenError("token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise TokenError("bad token signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"token has no {exc.claim!r} claim") from None
        except jwt.InvalidTokenError:
            raise TokenError("invalid token") from None
