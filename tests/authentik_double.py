"""A stateful Authentik (2025.12.4 API) served over real HTTP on loopback, for tests.

Every request body is validated with the vendor's own models from `authentik-client`
(`OAuth2ProviderRequest`, `PatchedOAuth2ProviderRequest`, `ApplicationRequest`, ...) and every
response is built through its response models (`OAuth2Provider`, `Application`, `Paginated*List`,
`GenericError`, ...), so a field the real API does not have fails here too. It is stricter than
Authentik in one way: unknown body fields are a 400 (Authentik ignores them silently).

It keeps state like the real server (integer provider pks, UUID application pks, unique names,
client ids and slugs with the real 400 shapes, SET_NULL on provider deletion), paginates with a
small page size, and starts with what a fresh Authentik has: the default flows, the self-signed
certificate and the managed scope mappings. It also serves OIDC: per-application JWKS and discovery,
and the token endpoint's client_credentials grant, with real RS256 tokens; like the real server, a
provider's first client_credentials login creates the service account `ak-<provider name>-client_credentials`
(listed and deleted under /core/users/).

Faults: `fail_next(n, status=502)`, `stop()`/`start()`, `ready`, `defaults_ready`, `token_active`.
Time: `latency` (seconds per write and per read, as a real Authentik takes them) and `capacity` (how
many requests it works on at once; None: no limit), for benchmarks; `peak_in_flight` says how many
API calls it was answering at once at most. Lists honour `page_size` up to `max_page_size`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib
import importlib.util
import json
import math
import secrets
import string
import sys
import threading
import time
import types
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.helpers import free_port

VERSION = "2025.12.4"
TOKEN_LENGTH = 128
VENDOR_MODELS = {
    "OAuth2ProviderRequest": "o_auth2_provider_request",
    "PatchedOAuth2ProviderRequest": "patched_o_auth2_provider_request",
    "OAuth2Provider": "o_auth2_provider",
    "OAuth2ProviderSetupURLs": "o_auth2_provider_setup_urls",
    "ApplicationRequest": "application_request",
    "PatchedApplicationRequest": "patched_application_request",
    "Application": "application",
    "Flow": "flow",
    "CertificateKeyPair": "certificate_key_pair",
    "ScopeMapping": "scope_mapping",
    "PaginatedOAuth2ProviderList": "paginated_o_auth2_provider_list",
    "PaginatedApplicationList": "paginated_application_list",
    "PaginatedFlowList": "paginated_flow_list",
    "PaginatedCertificateKeyPairList": "paginated_certificate_key_pair_list",
    "PaginatedScopeMappingList": "paginated_scope_mapping_list",
    "Version": "version",
    "GenericError": "generic_error",
    "ValidationError": "validation_error",
    "User": "user",
    "PaginatedUserList": "paginated_user_list",
}


def _vendor_models() -> types.SimpleNamespace:
    """Import only the models needed: `authentik_client/__init__` imports every API and model (~12 s),
    so its package modules are stood in for while the model modules load, then removed again."""
    spec = importlib.util.find_spec("authentik_client")
    assert spec and spec.submodule_search_locations, "pip install authentik-client"
    root = list(spec.submodule_search_locations)[0]
    stubs = []
    for name, path in (("authentik_client", root), ("authentik_client.models", f"{root}/models")):
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [path]
            sys.modules[name] = module
            stubs.append(name)
    try:
        return types.SimpleNamespace(**{
            cls: getattr(importlib.import_module(f"authentik_client.models.{module}"), cls)
            for cls, module in VENDOR_MODELS.items()})
    finally:
        for name in stubs:
            del sys.modules[name]


M = _vendor_models()

_KEY = None


def signing_key():
    """One RSA key for the process (generating one per double would cost ~0.1 s each)."""
    global _KEY
    if _KEY is None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        _KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _KEY


def _jsonable(model, data: dict | None = None) -> Any:
    """A model as JSON. The generated `to_dict` drops read-only fields (pk, ...), so this dumps
    every field, leaving out None only for keys the input did not have."""
    dumped = model.model_dump(mode="json", by_alias=True)
    given = data if data is not None else model.model_fields_set
    return {key: value for key, value in dumped.items() if value is not None or key in given}


def _out(model_cls, data: dict) -> dict:
    return _jsonable(model_cls.from_dict(data), data)


class HTTPError(Exception):
    def __init__(self, status: int, body: Any):
        self.status = status
        self.body = body


def _not_found(what: str) -> HTTPError:
    return HTTPError(404, _jsonable(M.GenericError(detail=f"No {what} matches the given query.")))


def _invalid(errors: dict[str, list[str]]) -> HTTPError:
    non_field = errors.pop("non_field_errors", None)
    model = M.ValidationError(non_field_errors=non_field, additional_properties=errors)
    return HTTPError(400, json.loads(model.to_json()))  # to_dict spreads additional_properties


def validate_body(model, body: Any, *, partial: bool = False):
    """Parse a request body with a vendor request model; a DRF-shaped 400 on any problem."""
    import pydantic

    if not isinstance(body, dict):
        raise _invalid({"non_field_errors": [f"Invalid data. Expected a dictionary, but got "
                                             f"{type(body).__name__}."]})
    known = set(model.model_fields)
    unknown = sorted(set(body) - known)
    if unknown:
        raise _invalid({key: ["Unknown field (the ecoctl test double rejects what Authentik would ignore)."]
                        for key in unknown})
    try:
        parsed = model.model_validate(body)
    except pydantic.ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "non_field_errors"
            message = "This field is required." if error["type"] == "missing" or (
                error["input"] is None and key not in body) else error["msg"]
            errors.setdefault(key, []).append(message)
        raise _invalid(errors) from None
    return parsed, {key: getattr(parsed, key) for key in body}


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    body: Any
    status: int = 0
    arrived: int = 0
    answered: int = 0
    """When the call arrived and when its answer left, on one counter shared by every call."""


@dataclass(frozen=True)
class Latency:
    """Seconds the double takes for each API call before it answers, like a real Authentik."""

    write: float = 0.0
    read: float = 0.0

    def of(self, method: str) -> float:
        return self.read if method in ("GET", "HEAD") else self.write


MEASURED = Latency(write=0.37, read=0.2)
"""A real Authentik 2025.12.4 measured (issue #29): ~370 ms per create, one at a time; a plan of
9 reads in 1.7-3.1 s."""


@dataclass
class State:
    flows: dict[str, dict] = field(default_factory=dict)
    certificates: dict[str, dict] = field(default_factory=dict)
    scope_mappings: dict[str, dict] = field(default_factory=dict)
    providers: dict[int, dict] = field(default_factory=dict)
    applications: dict[str, dict] = field(default_factory=dict)
    users: dict[int, dict] = field(default_factory=dict)
    next_pk: int = 1
    next_user_pk: int = 1


def _uuid() -> str:
    return str(uuid.uuid4())


def _fresh_state(base_url: str) -> State:
    state = State()
    for slug, name, designation in (
            ("default-authentication-flow", "Welcome to authentik!", "authentication"),
            ("default-provider-authorization-explicit-consent", "Authorize Application", "authorization"),
            ("default-provider-authorization-implicit-consent", "Authorize Application", "authorization"),
            ("default-invalidation-flow", "Logout", "invalidation"),
            ("default-provider-invalidation-flow", "Logged out of application", "invalidation")):
        pk = _uuid()
        state.flows[pk] = {
            "pk": pk, "policybindingmodel_ptr_id": pk, "name": name, "slug": slug, "title": name,
            "designation": designation, "background": "", "background_url": "/static/dist/assets/images/flow_background.jpg",
            "background_themed_urls": None, "stages": [], "policies": [], "cache_count": 0,
            "policy_engine_mode": "any", "compatibility_mode": False,
            "export_url": f"/api/v3/flows/instances/{slug}/export/", "layout": "stacked",
            "denied_action": "message_continue", "authentication": "none"}
    from cryptography.hazmat.primitives import serialization

    der = signing_key().public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    pk = _uuid()
    state.certificates[pk] = {
        "pk": pk, "name": "authentik Self-signed Certificate",
        "fingerprint_sha256": hashlib.sha256(der).hexdigest(), "fingerprint_sha1": hashlib.sha1(der).hexdigest(),
        "cert_expiry": "2026-12-31T00:00:00Z", "cert_subject": "CN=authentik Self-signed Certificate",
        "private_key_available": True, "key_type": "rsa",
        "certificate_download_url": f"/api/v3/crypto/certificatekeypairs/{pk}/view_certificate/?download",
        "private_key_download_url": f"/api/v3/crypto/certificatekeypairs/{pk}/view_private_key/?download",
        "managed": "goauthentik.io/crypto/self-signed"}
    for scope, label in (("openid", "OpenID"), ("email", "Email"), ("profile", "Profile"),
                         ("offline_access", "offline_access")):
        pk = _uuid()
        state.scope_mappings[pk] = {
            "pk": pk, "managed": f"goauthentik.io/providers/oauth2/scope-{scope}",
            "name": f"authentik default OAuth Mapping: {label} '{scope}'", "expression": "return {}",
            "component": "ak-property-mapping-provider-scope-form", "verbose_name": "Scope Mapping",
            "verbose_name_plural": "Scope Mappings", "meta_model_name": "authentik_providers_oauth2.scopemapping",
            "scope_name": scope, "description": ""}
    state.users[1] = _user(1, "akadmin", "authentik Default Admin", "internal", superuser=True)
    state.next_user_pk = 2
    return state


def _user(pk: int, username: str, name: str, kind: str, superuser: bool = False, path: str = "users",
          attributes: dict | None = None) -> dict:
    now = "2026-01-01T00:00:00Z"
    return {"pk": pk, "username": username, "name": name, "is_active": True, "last_login": None,
            "date_joined": now, "is_superuser": superuser, "groups": [], "groups_obj": [], "roles": [],
            "roles_obj": [], "email": "", "avatar": "attributes.avatar", "attributes": attributes or {},
            "uid": hashlib.sha256(username.encode()).hexdigest(), "path": path, "type": kind,
            "uuid": _uuid(), "password_change_date": now, "last_updated": now}


def client_credentials_username(provider_name: str) -> str:
    """The service account Authentik creates (update_or_create) on a provider's first
    client_credentials login: `ak-<provider name, trimmed to fit 150>-client_credentials`."""
    return f"ak-{provider_name[:150 - 22]}-client_credentials"


class LoopbackServer:
    """Serves `self._app()` (an ASGI app) with uvicorn in a thread on `self.host`:`self.port`."""

    host = "127.0.0.1"
    port: int
    _server = None
    _thread: threading.Thread | None = None

    def _app(self):
        raise NotImplementedError

    def start(self):
        import uvicorn

        config = uvicorn.Config(self._app(), host=self.host, port=self.port, log_level="error",
                                lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=type(self).__name__, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{type(self).__name__} did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            assert self._thread is not None
            self._thread.join(10)
            self._server = None


class AuthentikDouble(LoopbackServer):
    """See the module docstring. `base_url`, `token`; `requests` records what it was sent."""

    def __init__(self, *, token: str | None = None, page_size: int = 2, version: str = VERSION,
                 port: int | None = None, max_page_size: int | None = None, latency: Latency = Latency(),
                 capacity: int | None = None):
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.token = token or secrets.token_urlsafe(32)
        self.page_size = page_size
        self.max_page_size = max_page_size
        self.version = version
        self.latency = latency
        self.capacity = capacity
        self.peak_in_flight = 0
        self._in_flight = 0
        self._clock = 0
        self.ready = True
        self.defaults_ready = True
        self.token_active = True
        self.requests: list[Recorded] = []
        self.state = _fresh_state(self.base_url)
        self._faults: list[tuple[int, bool]] = []
        self._lock = threading.RLock()

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> "AuthentikDouble":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def speaks_logout_uris(self) -> bool:
        """Authentik 2026.5 added `redirect_uri_type` (logout URIs); an older one ignores the field,
        as DRF ignores unknown fields of a nested serializer."""
        major, minor = (int(part) for part in self.version.split(".")[:2])
        return (major, minor) >= (2026, 5)

    def reset(self) -> None:
        """Back to a freshly booted Authentik (for a server shared between tests)."""
        with self._lock:
            self.state = _fresh_state(self.base_url)
            self.requests.clear()
            self._faults.clear()
            self.ready = self.defaults_ready = self.token_active = True
            self.version = VERSION
            self.latency = Latency()
            self.peak_in_flight = 0

    # -- test controls ---------------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 502, processed: bool = False) -> None:
        """The next `count` API calls answer `status` (as a proxy in front of a sick Authentik would);
        with `processed`, the call is carried out first and only its answer is lost."""
        with self._lock:
            self._faults.extend([(status, processed)] * count)

    def api_calls(self, method: str | None = None, path_prefix: str = "/api/v3/") -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith(path_prefix)
                and (method is None or r.method == method)]

    def writes(self) -> list[Recorded]:
        return [r for r in self.api_calls() if r.method in ("POST", "PUT", "PATCH", "DELETE")]

    def provider(self, client_id: str) -> dict | None:
        return next((p for p in self.state.providers.values() if p["client_id"] == client_id), None)

    def delete_provider(self, client_id: str) -> None:
        """What an admin clicking "delete" does (applications keep existing, unbound)."""
        with self._lock:
            provider = self.provider(client_id)
            assert provider is not None, client_id
            self._delete_provider(provider["pk"])

    def add_client(self, slug: str, redirect_uris: tuple[str, ...] = ()) -> dict:
        """Provision a provider + application directly (for other tests that need a client)."""
        with self._lock:
            provider = self._create_provider({
                "name": f"{slug}-provider", "client_type": "confidential", "client_id": slug,
                "authorization_flow": self.flow_pk("default-provider-authorization-implicit-consent"),
                "invalidation_flow": self.flow_pk("default-provider-invalidation-flow"),
                "redirect_uris": [{"matching_mode": "strict", "url": u} for u in redirect_uris],
                "signing_key": next(iter(self.state.certificates)),
                "property_mappings": [pk for pk, m in self.state.scope_mappings.items()
                                      if m["scope_name"] in ("openid", "email", "profile")]})
            self._create_application({"name": slug, "slug": slug, "provider": provider["pk"]})
            return provider

    def add_user(self, username: str, kind: str = "internal") -> dict:
        """A user made by an admin (or by Authentik itself, with kind `service_account`)."""
        with self._lock:
            pk = self.state.next_user_pk
            self.state.next_user_pk += 1
            self.state.users[pk] = _user(pk, username, username, kind)
            return self.state.users[pk]

    def user(self, username: str) -> dict | None:
        return next((u for u in self.state.users.values() if u["username"] == username), None)

    def flow_pk(self, slug: str) -> str:
        return next(pk for pk, flow in self.state.flows.items() if flow["slug"] == slug)

    def issuer(self, slug: str) -> str:
        return f"{self.base_url}/application/o/{slug}/"

    def jwks(self) -> dict:
        from jwt.algorithms import RSAAlgorithm

        jwk = json.loads(RSAAlgorithm.to_jwk(signing_key().public_key()))
        jwk.update({"kid": self._kid(), "alg": "RS256", "use": "sig"})
        return {"keys": [jwk]}

    def mint_token(self, slug: str, sub: str = "user-1", scope: str = "openid email profile",
                   ttl: int = 300, audience: str | None = None, **claims: Any) -> str:
        """An RS256 access token as this Authentik would issue for application `slug`.

        `aud` is the client_id of the provider bound to `slug` (or `slug` when there is none);
        a negative `ttl` gives an expired token.
        """
        app = self.state.applications.get(slug)
        provider = self.state.providers.get(app["provider"]) if app and app.get("provider") else None
        now = int(time.time())
        payload = {"iss": self.issuer(slug), "sub": sub,
                   "aud": audience or (provider["client_id"] if provider else slug),
                   "exp": now + ttl, "iat": now, "auth_time": now, "scope": scope,
                   "azp": provider["client_id"] if provider else slug, "jti": secrets.token_hex(16), **claims}
        return self._sign(payload)

    # -- internals -------------------------------------------------------------------------------

    def _kid(self) -> str:
        return hashlib.md5(self.jwks_public_der()).hexdigest()

    @staticmethod
    def jwks_public_der() -> bytes:
        from cryptography.hazmat.primitives import serialization

        return signing_key().public_key().public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)

    def _sign(self, payload: dict) -> str:
        import jwt

        return jwt.encode(payload, signing_key(), algorithm="RS256", headers={"kid": self._kid()})

    def _provider_out(self, stored: dict) -> dict:
        app = next((a for a in self.state.applications.values() if a.get("provider") == stored["pk"]), None)
        data = {**stored, "component": "ak-provider-oauth2-form",
                "assigned_application_slug": app["slug"] if app else None,
                "assigned_application_name": app["name"] if app else None,
                "assigned_backchannel_application_slug": None, "assigned_backchannel_application_name": None,
                "verbose_name": "OAuth2/OpenID Provider", "verbose_name_plural": "OAuth2/OpenID Providers",
                "meta_model_name": "authentik_providers_oauth2.oauth2provider"}
        out = _out(M.OAuth2Provider, data)
        out["redirect_uris"] = [{k: v for k, v in uri.items() if v is not None} for uri in out["redirect_uris"]]
        return out

    def _application_out(self, stored: dict) -> dict:
        provider = self.state.providers.get(stored["provider"]) if stored.get("provider") else None
        provider_obj = None
        if provider:
            out = self._provider_out(provider)
            provider_obj = {key: out[key] for key in (
                "pk", "name", "authentication_flow", "authorization_flow", "invalidation_flow",
                "property_mappings", "component", "assigned_application_slug", "assigned_application_name",
                "assigned_backchannel_application_slug", "assigned_backchannel_application_name",
                "verbose_name", "verbose_name_plural", "meta_model_name") if key in out}
            provider_obj.setdefault("authentication_flow", None)
        data = {**stored, "provider_obj": provider_obj, "backchannel_providers_obj": [],
                "launch_url": stored.get("meta_launch_url") or None, "meta_icon_url": None,
                "meta_icon_themed_urls": None}
        return _out(M.Application, data)

    def _paginate(self, request, items: list[dict], model) -> dict:
        try:
            page = int(request.query_params.get("page", 1))
            size = int(request.query_params.get("page_size", self.page_size))
        except ValueError:
            raise HTTPError(404, _jsonable(M.GenericError(detail="Invalid page."))) from None
        size = min(size, self.max_page_size or size)  # DRF cuts a page_size past its maximum
        count = len(items)
        pages = max(1, math.ceil(count / size))
        if page < 1 or page > pages:
            raise HTTPError(404, _jsonable(M.GenericError(detail="Invalid page.")))
        chunk = items[(page - 1) * size: page * size]
        pagination = {"next": page + 1 if page < pages else 0, "previous": page - 1 if page > 1 else 0,
                      "count": count, "current": page, "total_pages": pages,
                      "start_index": (page - 1) * size + 1 if count else 0,
                      "end_index": min(page * size, count)}
        body = {"pagination": pagination, "results": chunk, "autocomplete": {}}
        model.from_dict(body)  # the vendor's list model must accept what is sent
        return body

    def _check_refs(self, values: dict) -> None:
        errors: dict[str, list[str]] = {}
        for key in ("authorization_flow", "invalidation_flow", "authentication_flow"):
            if values.get(key) is not None and str(values[key]) not in self.state.flows:
                errors[key] = [f'Invalid pk "{values[key]}" - object does not exist.']
        for key in ("signing_key", "encryption_key"):
            if values.get(key) is not None and str(values[key]) not in self.state.certificates:
                errors[key] = [f'Invalid pk "{values[key]}" - object does not exist.']
        for pk in values.get("property_mappings") or []:
            if str(pk) not in self.state.scope_mappings:
                errors["property_mappings"] = [f'Invalid pk "{pk}" - object does not exist.']
        if values.get("grant_types") == []:
            errors["grant_types"] = ["This list may not be empty."]
        if errors:
            raise _invalid(errors)

    def _check_unique_provider(self, values: dict, pk: int | None) -> None:
        errors: dict[str, list[str]] = {}
        for other in self.state.providers.values():
            if other["pk"] == pk:
                continue
            if "name" in values and other["name"] == values["name"]:
                errors["name"] = ["provider with this name already exists."]
            if values.get("client_id") and other["client_id"] == values["client_id"]:
                errors["client_id"] = ["OAuth2/OpenID Provider with this Client ID already exists."]
        if errors:
            raise _invalid(errors)

    def _create_provider(self, body: dict) -> dict:
        parsed, values = validate_body(M.OAuth2ProviderRequest, body)
        self._check_refs(values)
        self._check_unique_provider(values, None)
        pk = self.state.next_pk
        self.state.next_pk += 1
        alphabet = string.ascii_letters + string.digits
        stored = {
            "pk": pk, "name": parsed.name, "authentication_flow": None,
            "authorization_flow": str(parsed.authorization_flow), "invalidation_flow": str(parsed.invalidation_flow),
            "property_mappings": [str(p) for p in parsed.property_mappings or []],
            "client_type": (parsed.client_type.value if parsed.client_type else "confidential"),
            "client_id": parsed.client_id or "".join(secrets.choice(alphabet) for _ in range(40)),
            "client_secret": parsed.client_secret or "".join(secrets.choice(alphabet) for _ in range(TOKEN_LENGTH)),
            "access_code_validity": "minutes=1", "access_token_validity": "hours=1",
            "refresh_token_validity": "days=30", "refresh_token_threshold": "seconds=0",
            "include_claims_in_id_token": True, "signing_key": None, "encryption_key": None,
            "redirect_uris": [], "logout_uri": "", "logout_method": "backchannel",
            "sub_mode": "hashed_user_id", "issuer_mode": "per_provider",
            "jwt_federation_sources": [], "jwt_federation_providers": []}
        self._update_provider(stored, values)
        self.state.providers[pk] = stored
        return stored

    def _update_provider(self, stored: dict, values: dict) -> None:
        for key, value in values.items():
            if key == "redirect_uris":
                value = [{k: (v.value if hasattr(v, "value") else v) for k, v in uri.to_dict().items()
                          if k != "redirect_uri_type" or self.speaks_logout_uris}
                         for uri in value or []]
            elif key == "property_mappings" or key in ("jwt_federation_sources",):
                value = [str(v) for v in value or []]
            elif key == "grant_types":
                value = [v.value for v in value or []]
            elif hasattr(value, "value"):
                value = value.value
            elif isinstance(value, uuid.UUID):
                value = str(value)
            stored[key] = value

    def _delete_provider(self, pk: int) -> None:
        del self.state.providers[pk]
        for app in self.state.applications.values():
            if app.get("provider") == pk:
                app["provider"] = None  # Application.provider is SET_NULL in Authentik

    def _check_application(self, values: dict, slug: str | None) -> None:
        errors: dict[str, list[str]] = {}
        if slug is None and values["slug"] in self.state.applications:
            errors["slug"] = ["Application with this slug already exists."]
        provider = values.get("provider")
        if provider is not None:
            if provider not in self.state.providers:
                errors["provider"] = [f'Invalid pk "{provider}" - object does not exist.']
            elif any(a.get("provider") == provider and a["slug"] != slug for a in self.state.applications.values()):
                errors["provider"] = ["Application with this provider already exists."]
        if errors:
            raise _invalid(errors)

    def _create_application(self, body: dict) -> dict:
        parsed, values = validate_body(M.ApplicationRequest, body)
        self._check_application(values, None)
        pk = _uuid()
        stored = {"pk": pk, "pbm_uuid": _uuid(), "name": parsed.name, "slug": parsed.slug, "provider": None,
                  "backchannel_providers": [], "open_in_new_tab": False, "meta_launch_url": "",
                  "meta_icon": None, "meta_description": "", "meta_publisher": "",
                  "policy_engine_mode": "any", "group": "", "meta_hide": False}
        stored.update({k: (v.value if hasattr(v, "value") else v) for k, v in values.items()})
        self.state.applications[stored["slug"]] = stored
        return stored

    # -- HTTP ------------------------------------------------------------------------------------

    def _app(self):
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, PlainTextResponse, Response
        from starlette.routing import Route

        double = self

        def authenticate(request) -> None:
            header = request.headers.get("authorization", "")
            if not header.lower().startswith("bearer "):
                raise HTTPError(403, _jsonable(M.GenericError(detail="Authentication credentials were not provided.")))
            if header[7:] != double.token or not double.token_active:
                raise HTTPError(403, _jsonable(M.GenericError(detail="Token invalid/expired")))

        async def body_of(request) -> Any:
            raw = await request.body()
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                raise HTTPError(400, _jsonable(M.GenericError(detail="JSON parse error"))) from None

        gate = asyncio.Semaphore(double.capacity) if double.capacity else None

        async def take_time(method: str) -> None:
            """The time a real Authentik takes, in one of its `capacity` places when it has a limit."""
            if gate is None:
                await asyncio.sleep(double.latency.of(method))
                return
            async with gate:
                await asyncio.sleep(double.latency.of(method))

        def tick() -> int:
            with double._lock:
                double._clock += 1
                return double._clock

        def endpoint(handler, api: bool = True):
            async def run(request):
                body = await body_of(request) if request.method in ("POST", "PUT", "PATCH") and api else None
                record = Recorded(request.method, request.url.path, request.url.query, body, arrived=tick())
                double.requests.append(record)
                with double._lock:
                    fault, processed = double._faults.pop(0) if double._faults and api else (0, False)
                if fault and not processed:
                    record.status, record.answered = fault, tick()
                    return PlainTextResponse("Bad Gateway" if fault == 502 else "Error", status_code=fault)
                double._in_flight += 1
                double.peak_in_flight = max(double.peak_in_flight, double._in_flight)
                try:
                    if api:
                        authenticate(request)
                    await take_time(request.method)
                    with double._lock:
                        status, result = await handler(request, body)
                except HTTPError as exc:
                    status, result = exc.status, exc.body
                finally:
                    double._in_flight -= 1
                record.answered = tick()
                if fault:  # done, but the answer is lost on the way back
                    record.status = fault
                    return PlainTextResponse("Bad Gateway", status_code=fault)
                record.status = status
                if status == 204:
                    return Response(status_code=204)
                return JSONResponse(result, status_code=status)
            return run

        def defaults_visible(items: list[dict]) -> list[dict]:
            return items if double.defaults_ready else []

        async def health_ready(request):
            return Response(status_code=200 if double.ready else 503)

        async def version(request, body):
            return 200, _jsonable(M.Version(version_current=double.version, version_latest=double.version,
                                            version_latest_valid=True, build_hash="", outdated=False,
                                            outpost_outdated=False))

        async def flows(request, body):
            query = request.query_params
            items = [_out(M.Flow, f) for f in defaults_visible(list(double.state.flows.values()))
                     if query.get("slug") in (None, f["slug"])
                     and query.get("designation") in (None, f["designation"])]
            items.sort(key=lambda f: f["slug"])
            return 200, double._paginate(request, items, M.PaginatedFlowList)

        async def certificates(request, body):
            name = request.query_params.get("name")
            items = [_out(M.CertificateKeyPair, c)
                     for c in defaults_visible(list(double.state.certificates.values()))
                     if name in (None, c["name"])]
            return 200, double._paginate(request, items, M.PaginatedCertificateKeyPairList)

        async def scope_mappings(request, body):
            managed = request.query_params.getlist("managed")
            items = [_out(M.ScopeMapping, m)
                     for m in defaults_visible(list(double.state.scope_mappings.values()))
                     if not managed or m["managed"] in managed]
            items.sort(key=lambda m: m["name"])
            return 200, double._paginate(request, items, M.PaginatedScopeMappingList)

        async def providers(request, body):
            if request.method == "POST":
                return 201, double._provider_out(double._create_provider(body))
            query = request.query_params
            items = [double._provider_out(p) for p in sorted(double.state.providers.values(),
                                                             key=lambda p: p["name"])
                     if query.get("client_id") in (None, p["client_id"]) and query.get("name") in (None, p["name"])]
            return 200, double._paginate(request, items, M.PaginatedOAuth2ProviderList)

        def provider_of(request) -> dict:
            try:
                pk = int(request.path_params["pk"])
            except ValueError:
                raise _not_found("OAuth2Provider") from None
            if pk not in double.state.providers:
                raise _not_found("OAuth2Provider")
            return double.state.providers[pk]

        async def provider_detail(request, body):
            stored = provider_of(request)
            if request.method == "DELETE":
                double._delete_provider(stored["pk"])
                return 204, None
            if request.method in ("PATCH", "PUT"):
                model = M.PatchedOAuth2ProviderRequest if request.method == "PATCH" else M.OAuth2ProviderRequest
                _, values = validate_body(model, body)
                double._check_refs(values)
                double._check_unique_provider(values, stored["pk"])
                double._update_provider(stored, values)
            return 200, double._provider_out(stored)

        async def setup_urls(request, body):
            stored = provider_of(request)
            app = next((a for a in double.state.applications.values() if a.get("provider") == stored["pk"]), None)
            if app is None:
                raise _not_found("Application")
            base, slug = double.base_url, app["slug"]
            return 200, _jsonable(M.OAuth2ProviderSetupURLs(
                issuer=double.issuer(slug), authorize=f"{base}/application/o/authorize/",
                token=f"{base}/application/o/token/", user_info=f"{base}/application/o/userinfo/",
                provider_info=f"{double.issuer(slug)}.well-known/openid-configuration",
                logout=f"{double.issuer(slug)}end-session/", jwks=f"{double.issuer(slug)}jwks/",
                dcr_registration=None))

        async def applications(request, body):
            if request.method == "POST":
                return 201, double._application_out(double._create_application(body))
            slug = request.query_params.get("slug")
            items = [double._application_out(a) for a in sorted(double.state.applications.values(),
                                                                 key=lambda a: a["name"])
                     if slug in (None, a["slug"])]
            return 200, double._paginate(request, items, M.PaginatedApplicationList)

        async def application_detail(request, body):
            stored = double.state.applications.get(request.path_params["slug"])
            if stored is None:
                raise _not_found("Application")
            if request.method == "DELETE":
                del double.state.applications[stored["slug"]]
                return 204, None
            if request.method == "PATCH":
                _, values = validate_body(M.PatchedApplicationRequest, body)
                if "slug" in values and values["slug"] != stored["slug"]:
                    if values["slug"] in double.state.applications:
                        raise _invalid({"slug": ["Application with this slug already exists."]})
                double._check_application({**values}, stored["slug"])
                stored.update({k: (v.value if hasattr(v, "value") else v) for k, v in values.items()})
                if stored["slug"] != request.path_params["slug"]:
                    double.state.applications[stored["slug"]] = double.state.applications.pop(
                        request.path_params["slug"])
            return 200, double._application_out(stored)

        async def users(request, body):
            query = request.query_params
            items = [_out(M.User, u) for u in sorted(double.state.users.values(), key=lambda u: u["username"])
                     if query.get("username") in (None, u["username"]) and query.get("type") in (None, u["type"])]
            return 200, double._paginate(request, items, M.PaginatedUserList)

        async def user_detail(request, body):
            try:
                stored = double.state.users.get(int(request.path_params["pk"]))
            except ValueError:
                stored = None
            if stored is None:
                raise _not_found("User")
            if request.method == "DELETE":
                del double.state.users[stored["pk"]]
                return 204, None
            return 200, _out(M.User, stored)

        def oidc_provider(slug: str) -> dict:
            app = double.state.applications.get(slug)
            provider = double.state.providers.get(app["provider"]) if app and app.get("provider") else None
            if provider is None:
                raise HTTPError(404, {"detail": "Not found."})
            return provider

        async def discovery(request, body):
            slug = request.path_params["slug"]
            oidc_provider(slug)
            base, issuer = double.base_url, double.issuer(slug)
            return 200, {
                "issuer": issuer, "authorization_endpoint": f"{base}/application/o/authorize/",
                "token_endpoint": f"{base}/application/o/token/",
                "userinfo_endpoint": f"{base}/application/o/userinfo/",
                "end_session_endpoint": f"{issuer}end-session/", "jwks_uri": f"{issuer}jwks/",
                "response_types_supported": ["code", "id_token", "id_token token", "code token",
                                             "code id_token", "code id_token token"],
                "grant_types_supported": ["authorization_code", "refresh_token", "implicit",
                                          "client_credentials", "password"],
                "id_token_signing_alg_values_supported": ["RS256"], "subject_types_supported": ["public"],
                "scopes_supported": ["openid", "email", "profile"]}

        async def jwks(request, body):
            provider = oidc_provider(request.path_params["slug"])
            return 200, (double.jwks() if provider.get("signing_key") else {"keys": []})

        async def token(request, body):
            from urllib.parse import parse_qsl

            form = dict(parse_qsl((await request.body()).decode()))
            client_id, client_secret = form.get("client_id"), form.get("client_secret")
            header = request.headers.get("authorization", "")
            if header.lower().startswith("basic "):
                client_id, _, client_secret = base64.b64decode(header[6:]).decode().partition(":")
            if form.get("grant_type") != "client_credentials":
                raise HTTPError(400, {"error": "unsupported_grant_type"})
            provider = double.provider(client_id or "")
            if provider is None or not secrets.compare_digest(provider["client_secret"], client_secret or ""):
                raise HTTPError(400, {"error": "invalid_client", "error_description":
                                      "Client authentication failed (e.g., unknown client, no client "
                                      "authentication included, or unsupported authentication method)"})
            app = next((a for a in double.state.applications.values() if a.get("provider") == provider["pk"]), None)
            if app is None or not provider.get("signing_key"):
                raise HTTPError(400, {"error": "invalid_grant", "error_description":
                                      "The provided authorization grant or refresh token is invalid"})
            scope = form.get("scope") or "openid"
            username = client_credentials_username(provider["name"])
            with double._lock:
                account = double.user(username)
                if account is None:
                    account = double.add_user(username, "service_account")
                account.update({"name": f"Autogenerated user from application {app['name']} (client credentials)",
                                "path": f"goauthentik.io/apps/{app['slug']}", "type": "service_account",
                                "attributes": {"goauthentik.io/user/generated": True},
                                "last_login": "2026-01-01T00:00:00Z"})
            sub = hashlib.sha256(username.encode()).hexdigest()
            access = double.mint_token(app["slug"], sub=sub, scope=scope, ttl=3600)
            return 200, {"access_token": access, "token_type": "Bearer", "scope": scope,
                         "expires_in": 3600, "id_token": access}

        api = "/api/v3"
        routes = [
            Route("/-/health/ready/", health_ready),
            Route("/-/health/live/", lambda request: Response(status_code=200)),
            Route(f"{api}/admin/version/", endpoint(version)),
            Route(f"{api}/flows/instances/", endpoint(flows)),
            Route(f"{api}/crypto/certificatekeypairs/", endpoint(certificates)),
            Route(f"{api}/propertymappings/provider/scope/", endpoint(scope_mappings)),
            Route(f"{api}/providers/oauth2/", endpoint(providers), methods=["GET", "POST"]),
            Route(f"{api}/providers/oauth2/{{pk}}/", endpoint(provider_detail),
                  methods=["GET", "PATCH", "PUT", "DELETE"]),
            Route(f"{api}/providers/oauth2/{{pk}}/setup_urls/", endpoint(setup_urls)),
            Route(f"{api}/core/applications/", endpoint(applications), methods=["GET", "POST"]),
            Route(f"{api}/core/applications/{{slug}}/", endpoint(application_detail),
                  methods=["GET", "PATCH", "DELETE"]),
            Route(f"{api}/core/users/", endpoint(users)),
            Route(f"{api}/core/users/{{pk}}/", endpoint(user_detail), methods=["GET", "DELETE"]),
            Route("/application/o/token/", endpoint(token, api=False), methods=["POST"]),
            Route("/application/o/{slug}/.well-known/openid-configuration", endpoint(discovery, api=False)),
            Route("/application/o/{slug}/jwks/", endpoint(jwks, api=False)),
        ]

        async def not_found(request, exc):
            return JSONResponse({"detail": "Not found."}, status_code=404)

        return Starlette(routes=routes, exception_handlers={404: not_found})


class FaultProxy(LoopbackServer):
    """A loopback reverse proxy that answers 502 to the next N requests, then forwards to `target`:
    the same fault injection as `AuthentikDouble.fail_next`, for a real Authentik."""

    def __init__(self, target: str):
        self.target = target.rstrip("/")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._faults: list[int] = []

    def fail_next(self, count: int, status: int = 502) -> None:
        self._faults.extend([status] * count)

    def _app(self):
        import httpx
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse, Response
        from starlette.routing import Route

        proxy = self
        client = httpx.AsyncClient(base_url=self.target, timeout=30)

        async def forward(request):
            if proxy._faults and request.url.path.startswith("/api/"):
                return PlainTextResponse("Bad Gateway", status_code=proxy._faults.pop(0))
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            answer = await client.request(request.method, request.url.path, params=request.url.query,
                                          headers=headers, content=await request.body())
            drop = {"content-encoding", "content-length", "transfer-encoding", "connection"}
            return Response(answer.content, status_code=answer.status_code,
                            headers={k: v for k, v in answer.headers.items() if k.lower() not in drop})

        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", forward, methods=methods)])


__all__ = ["AuthentikDouble", "FaultProxy", "Latency", "MEASURED", "validate_body", "M"]
