"""Authentik's API v3 over httpx: token auth, bounded retries, one-line errors, pagination,
the version check and the first-boot readiness wait. No printing: progress goes to a callback.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable

from ecoctl.errors import (AuthentikError, AuthentikNotFound, AuthentikTokenRejected,  # noqa: F401
                           AuthentikValidation, EcoctlError, Unreachable)

if TYPE_CHECKING:
    import httpx

    from ecoctl.workspace import Workspace

API = "/api/v3"
AUTHORIZATION_FLOW = "default-provider-authorization-implicit-consent"
INVALIDATION_FLOW = "default-provider-invalidation-flow"
SCOPES = ("openid", "email", "profile")
SCOPE_MANAGED = "goauthentik.io/providers/oauth2/scope-{}"
SUPPORTED = ((2025, 0), (2026, 99))
"""Oldest and newest (year, minor) whose API this module speaks: redirect_uris as objects and a
required invalidation_flow (2024.10.3+), scope mappings under /propertymappings/provider/scope/."""
PAGE_SIZE = 500
"""Results asked for per page of a list (Authentik's default is 100; it caps none, and a server
that did would still say which page is next)."""
RETRY_STATUS = frozenset({500, 502, 503, 504})
UNAVAILABLE_STATUS = frozenset({502, 503, 504})


LOGOUT_URIS = (2026, 5)
"""From this version a provider's redirect URIs carry `redirect_uri_type` (`logout`: a post-logout
redirect URI); older versions have no post-logout URIs to register."""


def version_tuple(version: str) -> tuple[int, int]:
    match = re.match(r"^(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def speaks_logout_uris(version: str) -> bool:
    return version_tuple(version) >= LOGOUT_URIS


def supported_version(version: str) -> bool:
    match = re.match(r"^(\d+)\.(\d+)", version)
    return bool(match) and SUPPORTED[0] <= (int(match[1]), int(match[2])) <= SUPPORTED[1]


def field_errors(body: Any) -> str:
    """`name: provider with this name already exists.; client_id: ...` from a DRF error body."""
    if not isinstance(body, dict):
        return str(body)[:200]
    parts = []
    for key, value in body.items():
        if isinstance(value, dict):
            value = [field_errors(value)]
        elif not isinstance(value, list):
            value = [value]
        text = " ".join(str(item if not isinstance(item, dict) else field_errors(item)) for item in value)
        parts.append(text if key == "non_field_errors" else f"{key}: {text}")
    return "; ".join(parts)


@dataclass(frozen=True)
class Defaults:
    """The objects a fresh Authentik creates from its blueprints, that every provider points at."""

    authorization_flow: str
    invalidation_flow: str
    signing_key: str
    scope_mappings: tuple[str, ...]


@dataclass
class Readiness:
    """What a readiness probe found; `missing` names what is not there yet."""

    missing: list[str] = field(default_factory=list)
    defaults: Defaults | None = None

    @property
    def ready(self) -> bool:
        return not self.missing and self.defaults is not None


class AuthentikClient:
    """One Authentik, one API token. Connection errors and 5xx are retried `retries` times with
    exponential backoff capped at `max_backoff` seconds, then raised as `Unreachable`/`AuthentikError`.
    Threads may share it: at most `concurrency` requests are in flight at once.
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0, retries: int = 4,
                 backoff: float = 0.5, max_backoff: float = 4.0,
                 sleep: Callable[[float], None] = time.sleep, concurrency: int = 1,
                 token_source: str = ""):
        import httpx

        self.base_url = base_url.rstrip("/")
        self.token_source = token_source  # where the token was read from, for messages
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self._in_flight = threading.BoundedSemaphore(concurrency)
        self._sleep = sleep
        self._version: str | None = None
        headers = {"Accept": "application/json", "User-Agent": "ecoctl"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # Loading the CA bundle costs ~0.1 s: only an https Authentik needs it.
        verify = _tls_context() if self.base_url.startswith("https://") else False
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout,
                                  verify=verify)

    @classmethod
    def for_workspace(cls, workspace: "Workspace", **options: Any) -> "AuthentikClient":
        """The ecosystem's Authentik, with its `core.authentik.concurrency` (OPTIONS win)."""
        endpoint = workspace.authentik
        settings = {"concurrency": workspace.ecosystem.core.authentik.concurrency,
                    "token_source": endpoint.token_source, **options}
        return cls(endpoint.base_url, endpoint.token, **settings)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "AuthentikClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        """The decoded JSON answer (None for 204); errors as one-line `EcoctlError`s."""
        response = self._send(method, path, json=json, params=params)
        if response.status_code >= 300:
            raise self._error(method, path, response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise AuthentikError(f"{self.base_url} answered {method} {API}{path} with something other than "
                                 "JSON: check that core.authentik.url points at Authentik",
                                 response.status_code) from None

    def _send(self, method: str, path: str, **kwargs: Any) -> "httpx.Response":
        import httpx

        url = path if path.startswith(("/-/", "/application/")) else API + path
        attempts = self.retries + 1
        for attempt in range(attempts):
            try:
                with self._in_flight:
                    response = self._http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                failure: str = _describe(exc)
                response = None
            else:
                if response.status_code not in RETRY_STATUS:
                    return response
                failure = f"HTTP {response.status_code}"
            if attempt + 1 < attempts:
                self._sleep(min(self.backoff * 2 ** attempt, self.max_backoff))
        where = f"Authentik at {self.base_url}"
        if response is None or response.status_code in UNAVAILABLE_STATUS:
            raise Unreachable(f"{where} does not answer ({failure} on {method} {url}, {attempts} attempts): "
                              "start it with `ecoctl up`, or check core.authentik.url in ecosystem.yaml")
        raise AuthentikError(f"{where} failed with {failure} on {method} {url} ({attempts} attempts): "
                             "check its logs (`ecoctl logs authentik-server`)", response.status_code)

    def _error(self, method: str, path: str, response: "httpx.Response") -> AuthentikError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = response.text[:200]
        detail = body.get("detail", "") if isinstance(body, dict) else ""
        what = f"{method} {API}{path}"
        if status in (401, 403):
            if "invalid" in str(detail).lower() or "expired" in str(detail).lower():
                where = f" read from {self.token_source}" if self.token_source else ""
                return AuthentikTokenRejected(f"Authentik rejected the API token{where} ({detail}): set it "
                                              "to a valid token (Admin > Directory > Tokens, intent API)",
                                              status, body)
            if "not provided" in str(detail).lower():
                return AuthentikError("no Authentik API token was sent: set AUTHENTIK_BOOTSTRAP_TOKEN or "
                                      "AUTHENTIK_TOKEN in .env", status, body)
            return AuthentikError(f"the Authentik API token may not {what} ({detail or status}): "
                                  "use a token of a superuser", status, body)
        if status == 404:
            return AuthentikNotFound(f"Authentik has no {what} ({detail or 'not found'})", status, body)
        if status == 400:
            return AuthentikValidation(f"Authentik rejected {what}: {field_errors(body)}", status, body)
        return AuthentikError(f"Authentik answered {status} to {what}: {detail or body}", status, body)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: dict) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: dict) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def list(self, path: str, **params: Any) -> list[dict]:
        """Every result of a paginated list, following `pagination.next` (a page number, 0 at the end)."""
        results: list[dict] = []
        page = 1
        while True:
            body = self.request("GET", path, params={**params, "page_size": PAGE_SIZE, "page": page})
            results.extend(body["results"])
            following = int(body.get("pagination", {}).get("next") or 0)
            if following <= page:
                return results
            page = following

    # -- version and readiness -----------------------------------------------------------------

    def version(self) -> str:
        """The running version, read once; unsupported versions are refused with the version named."""
        if self._version is None:
            version = str(self.get("/admin/version/")["version_current"])
            if not supported_version(version):
                (low, _), (high, _) = SUPPORTED
                raise EcoctlError(f"Authentik {version} is not supported: ecoctl speaks the API of "
                                  f"Authentik {low}.x to {high}.x; set core.authentik.version to one of "
                                  "those (or upgrade ecoctl)")
            self._version = version
        return self._version

    def health_ready(self) -> bool:
        import httpx

        try:
            return self._http.get("/-/health/ready/").status_code < 300
        except httpx.TransportError:
            return False

    def defaults(self, signing_key: str = "authentik Self-signed Certificate") -> Defaults:
        """Look up the default flows, certificate and scope mappings; raise naming what is missing."""
        status = self.probe_defaults(signing_key)
        if status.defaults is None:
            raise Unreachable(f"Authentik at {self.base_url} is not ready: missing "
                              f"{', '.join(status.missing)}: wait a minute after its first start "
                              "(`ecoctl up` waits), or create them")
        return status.defaults

    def probe_defaults(self, signing_key: str = "authentik Self-signed Certificate") -> Readiness:
        """The four lookups, side by side."""
        from ecoctl.support.parallel import gather

        managed = [SCOPE_MANAGED.format(scope) for scope in SCOPES]
        *flow_lists, certs, mapping_list = gather([
            lambda: self.list("/flows/instances/", slug=AUTHORIZATION_FLOW),
            lambda: self.list("/flows/instances/", slug=INVALIDATION_FLOW),
            lambda: self.list("/crypto/certificatekeypairs/", name=signing_key),
            lambda: self.list("/propertymappings/provider/scope/", managed=managed)], limit=self.concurrency)
        missing: list[str] = []
        flows = {}
        for slug, found in zip((AUTHORIZATION_FLOW, INVALIDATION_FLOW), flow_lists):
            pks = [flow["pk"] for flow in found if flow["slug"] == slug]
            if pks:
                flows[slug] = pks[0]
            else:
                missing.append(f"flow {slug}")
        certs = [c for c in certs if c["name"] == signing_key]
        if not certs:
            missing.append(f"certificate {signing_key!r}")
        mappings = {m["managed"]: m["pk"] for m in mapping_list}
        missing.extend(f"scope mapping {scope}" for scope, key in zip(SCOPES, managed) if key not in mappings)
        if missing:
            return Readiness(missing)
        return Readiness([], Defaults(flows[AUTHORIZATION_FLOW], flows[INVALIDATION_FLOW], certs[0]["pk"],
                                      tuple(mappings[key] for key in managed)))

    def probe(self, signing_key: str = "authentik Self-signed Certificate",
              token_source: str | None = None) -> Readiness:
        """One look, without retries: health, token, version, then the blueprint-made defaults.

        `token_source` (an external Authentik: where the token is read from) makes a 401/403 final:
        no blueprint will ever make that token valid, so it raises at once naming where to fix it."""
        if not self.health_ready():
            return Readiness(["server (/-/health/ready/ does not answer 2xx)"])
        saved = self.retries
        self.retries = 0
        try:
            self.version()
            return self.probe_defaults(signing_key)
        except Unreachable:
            return Readiness(["server (API does not answer)"])
        except AuthentikError as exc:
            if exc.status in (401, 403) and token_source:
                raise AuthentikError(f"Authentik at {self.base_url} refused the API token read from "
                                     f"{token_source} (HTTP {exc.status}): set it to a valid API token of "
                                     "a superuser (Admin > Directory > Tokens, intent API)",
                                     exc.status, exc.body) from None
            if exc.status in (401, 403):
                # on a first boot the worker applies the bootstrap token from a blueprint, like the flows
                return Readiness(["API token (not accepted yet)"])
            raise
        finally:
            self.retries = saved

    def wait_until_ready(self, timeout: float = 300.0,
                         on_progress: Callable[[list[str], float], None] | None = None,
                         interval: float = 2.0,
                         signing_key: str = "authentik Self-signed Certificate",
                         token_source: str | None = None) -> Defaults:
        """Poll until Authentik answers and its default flows, certificate and scope mappings exist.

        `on_progress(missing, elapsed_seconds)` is called after each look. On timeout the error names
        what is still missing.
        """
        start = time.monotonic()
        while True:
            status = self.probe(signing_key, token_source)
            elapsed = time.monotonic() - start
            if on_progress:
                on_progress(status.missing, elapsed)
            if status.ready:
                assert status.defaults is not None
                return status.defaults
            if elapsed + interval > timeout:
                hint = ("check that it finished its first boot (its worker creates the default flows)"
                        if token_source else "check `ecoctl logs authentik-worker` (it creates the "
                        "default flows on first boot)")
                raise EcoctlError(f"Authentik at {self.base_url} not ready after {timeout:.0f}s, still "
                                  f"missing: {', '.join(status.missing)}: {hint}, then run again")
            self._sleep(interval)


@lru_cache(maxsize=1)
def _tls_context():
    """Verifying TLS context, built once per process (building one costs ~0.1 s)."""
    import httpx

    return httpx.create_ssl_context()


def _describe(exc: Exception) -> str:
    name = type(exc).__name__
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused"
    return f"{name}: {text[:80]}" if text else name


def wait_for_authentik(workspace: "Workspace", timeout: float = 300.0,
                       on_progress: Callable[[list[str], float], None] | None = None,
                       interval: float = 2.0) -> Defaults:
    """What `ecoctl up` calls before provisioning: wait for a (first-booting) Authentik."""
    settings = workspace.ecosystem.core.authentik
    external = workspace.authentik.token_source if settings.url else None  # 401/403 is final there
    with AuthentikClient.for_workspace(workspace) as client:
        return client.wait_until_ready(timeout, on_progress, interval, signing_key=settings.signing_key,
                                       token_source=external)
