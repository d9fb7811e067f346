"""Authentik: one OAuth2/OIDC provider (`S-provider`, client_id `S`) and one application (slug `S`)
per service, and the service's client id, secret and issuer in `.env`.

- Redirect URIs come from the service's `redirect_uris`; when empty, `names.default_redirect_uri`:
  `http://127.0.0.1:<port>/callback` (`http://<host>:<port>/callback` for an external service),
  the same default `add-service` writes into ecosystem.yaml.
- Ownership: applications ecoctl creates carry `meta_publisher: "ecoctl:<ecosystem name>"`. Only those
  are ever deleted (with the provider bound to them, when it is `<slug>-provider` with client_id `<slug>`),
  so hand-made objects and other ecosystems sharing the same Authentik are left alone.
- Updates PATCH only the differing fields. Scope mappings the admin added are kept (the openid, email
  and profile ones must be there); redirect URIs are exactly the spec's (logout-type entries are kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ecoctl.names import env_prefix
from ecoctl.names import default_redirect_uri
from ecoctl.plan import Change, Provider

if TYPE_CHECKING:
    from ecoctl.authentik import AuthentikClient, Defaults
    from ecoctl.workspace import Workspace

PROVIDERS = "/providers/oauth2/"
APPLICATIONS = "/core/applications/"
PROVIDER_KIND = "oauth2 provider"
APPLICATION_KIND = "application"
CREDENTIALS_KIND = "oidc credentials"


def provider_name(service: str) -> str:
    return f"{service}-provider"


def issuer(base_url: str, slug: str) -> str:
    return f"{base_url.rstrip('/')}/application/o/{slug}/"


def env_keys(service: str) -> tuple[str, str, str]:
    prefix = env_prefix(service)
    return f"{prefix}_OIDC_CLIENT_ID", f"{prefix}_OIDC_CLIENT_SECRET", f"{prefix}_OIDC_ISSUER"


def _authorization_uris(provider: dict) -> list[str]:
    return [uri["url"] for uri in provider.get("redirect_uris") or []
            if uri.get("redirect_uri_type") in (None, "authorization")]


@dataclass(frozen=True)
class Client:
    """What one service needs in Authentik."""

    service: str
    redirect_uris: tuple[str, ...]


@dataclass
class Actual:
    providers: dict[str, dict]
    """OAuth2 providers by client_id."""
    applications: dict[str, dict]
    """Applications by slug."""
    defaults: "Defaults"
    secrets: dict[str, str] = field(default_factory=dict)


class AuthentikProvider(Provider):
    name = "authentik"

    def __init__(self, workspace: "Workspace", client: "AuthentikClient | None" = None):
        super().__init__(workspace)
        self._client = client
        self._actual: Actual | None = None

    @cached_property
    def client(self) -> "AuthentikClient":
        if self._client is None:
            from ecoctl.authentik import AuthentikClient

            self._client = AuthentikClient.for_workspace(self.workspace)
        return self._client

    @property
    def marker(self) -> str:
        return f"ecoctl:{self.workspace.ecosystem.name}"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # -- read / desired ------------------------------------------------------------------------

    def read(self) -> Actual:
        client = self.client
        client.version()
        defaults = client.defaults(self.workspace.ecosystem.core.authentik.signing_key)
        providers = {p["client_id"]: p for p in client.list(PROVIDERS)}
        applications = {a["slug"]: a for a in client.list(APPLICATIONS, superuser_full_list="true")}
        self._actual = Actual(providers, applications, defaults)
        return self._actual

    def desired(self) -> dict[str, Client]:
        wanted = {}
        for service, spec in self.workspace.ecosystem.services.items():
            uris = spec.redirect_uris or [default_redirect_uri(spec.port, spec.host)]
            wanted[service] = Client(service, tuple(dict.fromkeys(uris)))
        return wanted

    # -- diff ----------------------------------------------------------------------------------

    def provider_fields(self, client: Client, defaults: "Defaults") -> dict[str, Any]:
        return {
            "name": provider_name(client.service),
            "client_type": "confidential",
            "client_id": client.service,
            "authorization_flow": defaults.authorization_flow,
            "invalidation_flow": defaults.invalidation_flow,
            "redirect_uris": [{"matching_mode": "strict", "url": url} for url in client.redirect_uris],
            "signing_key": defaults.signing_key,
            "property_mappings": list(defaults.scope_mappings),
        }

    def provider_patch(self, client: Client, actual: dict, defaults: "Defaults") -> tuple[dict, list[str]]:
        """The fields to PATCH (only those that differ) and words saying how they differ."""
        want = self.provider_fields(client, defaults)
        patch: dict[str, Any] = {}
        words: list[str] = []
        for key in ("name", "client_type", "authorization_flow", "invalidation_flow", "signing_key"):
            if str(actual.get(key)) != str(want[key]):
                patch[key] = want[key]
                words.append(key)
        current_uris = _authorization_uris(actual)
        if current_uris != list(client.redirect_uris):
            kept = [uri for uri in actual.get("redirect_uris") or [] if uri.get("redirect_uri_type") == "logout"]
            patch["redirect_uris"] = want["redirect_uris"] + kept
            added = [url for url in client.redirect_uris if url not in current_uris]
            removed = [url for url in current_uris if url not in client.redirect_uris]
            words.append("redirect_uris " + " ".join([f"+{u}" for u in added] + [f"-{u}" for u in removed]
                                                     or ["reordered"]))
        current_maps = [str(pk) for pk in actual.get("property_mappings") or []]
        missing_maps = [pk for pk in want["property_mappings"] if str(pk) not in current_maps]
        if missing_maps:
            patch["property_mappings"] = current_maps + missing_maps
            words.append("scope mappings openid/email/profile")
        return patch, words

    def diff(self, desired: dict[str, Client], actual: Actual) -> list[Change]:
        changes: list[Change] = []
        base = self.client.base_url
        for service, client in desired.items():
            name = provider_name(service)
            existing = actual.providers.get(service)
            if existing is None:
                uris = ", ".join(client.redirect_uris)
                changes.append(Change(self.name, "create", PROVIDER_KIND, name,
                                      f"client_id {service}, redirect {uris}", data={"service": service}))
            else:
                patch, words = self.provider_patch(client, existing, actual.defaults)
                if patch:
                    changes.append(Change(self.name, "update", PROVIDER_KIND, name, "; ".join(words),
                                          data={"service": service, "pk": existing["pk"], "patch": patch}))
            app = actual.applications.get(service)
            if app is None:
                changes.append(Change(self.name, "create", APPLICATION_KIND, service, f"bound to {name}",
                                      data={"service": service}))
            elif existing is None or app.get("provider") != existing["pk"]:
                changes.append(Change(self.name, "update", APPLICATION_KIND, service, f"bind to {name}",
                                      data={"service": service}))
            if existing is not None:
                stale = self.stale_env(service, existing, base)
                if stale:
                    changes.append(Change(self.name, "update", CREDENTIALS_KIND, service,
                                          f"{', '.join(stale)} in .env", data={"service": service}))
        for slug, app in actual.applications.items():
            if slug in desired or app.get("meta_publisher") != self.marker:
                continue
            changes.append(Change(self.name, "delete", APPLICATION_KIND, slug, "service removed",
                                  data={"service": slug}))
            bound = next((p for p in actual.providers.values() if p["pk"] == app.get("provider")), None)
            if bound is not None and bound["client_id"] == slug and bound["name"] == provider_name(slug):
                changes.append(Change(self.name, "delete", PROVIDER_KIND, bound["name"], "service removed",
                                      data={"pk": bound["pk"], "service": slug}))
        return changes

    def stale_env(self, service: str, provider: dict, base: str) -> list[str]:
        env = self.workspace.env
        values = (provider["client_id"], provider.get("client_secret") or "", issuer(base, service))
        return [key for key, value in zip(env_keys(service), values) if env.get(key) != value]

    # -- apply ---------------------------------------------------------------------------------

    def _defaults(self) -> "Defaults":
        if self._actual is None:
            self.read()
        assert self._actual is not None
        return self._actual.defaults

    def _find_provider(self, service: str) -> dict | None:
        found = [p for p in self.client.list(PROVIDERS, client_id=service) if p["client_id"] == service]
        return found[0] if found else None

    def apply(self, change: Change) -> None:
        from ecoctl.authentik import AuthentikValidation

        service = change.data["service"]
        client = self.client
        if change.kind == PROVIDER_KIND and change.action == "create":
            wanted = self.desired()[service]
            try:
                provider = client.post(PROVIDERS, self.provider_fields(wanted, self._defaults()))
            except AuthentikValidation as exc:
                # a create retried after a lost answer, or made by a concurrent run: converge on it
                provider = self._find_provider(service) if "client_id" in exc.fields else None
                if provider is None:
                    raise
                patch, _ = self.provider_patch(wanted, provider, self._defaults())
                if patch:
                    provider = client.patch(f"{PROVIDERS}{provider['pk']}/", patch)
            self._remember(provider)
            self.write_env(service, provider)
        elif change.kind == PROVIDER_KIND and change.action == "update":
            provider = client.patch(f"{PROVIDERS}{change.data['pk']}/", change.data["patch"])
            self._remember(provider)
            self.write_env(service, provider)
        elif change.kind == PROVIDER_KIND and change.action == "delete":
            client.delete(f"{PROVIDERS}{change.data['pk']}/")
            env = self.workspace.env
            if any([env.remove(key) for key in env_keys(service)]):
                env.save()
        elif change.kind == APPLICATION_KIND and change.action == "create":
            provider = self._provider(service)
            body = {"name": service, "slug": service, "provider": provider["pk"],
                    "meta_publisher": self.marker,
                    "meta_description": f"{service}, managed by ecoctl (ecosystem {self.workspace.ecosystem.name})"}
            try:
                client.post(APPLICATIONS, body)
            except AuthentikValidation as exc:
                if "slug" not in exc.fields:
                    raise
                client.patch(f"{APPLICATIONS}{service}/", {"provider": provider["pk"]})
        elif change.kind == APPLICATION_KIND and change.action == "update":
            client.patch(f"{APPLICATIONS}{service}/", {"provider": self._provider(service)["pk"]})
        elif change.kind == APPLICATION_KIND and change.action == "delete":
            client.delete(f"{APPLICATIONS}{service}/")
        elif change.kind == CREDENTIALS_KIND:
            self.write_env(service, self._provider(service))
        else:
            raise ValueError(f"unknown change {change}")

    def _remember(self, provider: dict) -> None:
        if self._actual is not None:
            self._actual.providers[provider["client_id"]] = provider

    def _provider(self, service: str) -> dict:
        provider = self._actual.providers.get(service) if self._actual else None
        if provider is None:
            provider = self._find_provider(service)
        if provider is None:
            from ecoctl.errors import EcoctlError

            raise EcoctlError(f"Authentik has no provider with client_id {service!r}: run `ecoctl apply` again")
        return provider

    def write_env(self, service: str, provider: dict) -> None:
        """The service's client id, secret and issuer, saved atomically once the provider exists."""
        env = self.workspace.env
        values = (provider["client_id"], provider["client_secret"], issuer(self.client.base_url, service))
        changed = [env.set(key, value, replace=True) for key, value in zip(env_keys(service), values)]
        if any(changed):
            env.save()

