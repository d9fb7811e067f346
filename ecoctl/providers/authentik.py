"""Authentik: one OAuth2/OIDC provider (`S-provider`, client_id `S`) and one application (slug `S`)
per service. The client secret is ecoctl's (generated into `.env` before planning) and is set on
the provider, so the plan knows every value it writes; the issuer follows from the slug.

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

from ecoctl import contract
from ecoctl.names import default_redirect_uri
from ecoctl.plan import Change, Provider

if TYPE_CHECKING:
    from ecoctl.clients.authentik import AuthentikClient, Defaults
    from ecoctl.workspace import Workspace

PROVIDERS = "/providers/oauth2/"
APPLICATIONS = "/core/applications/"
PROVIDER_KIND = "oauth2 provider"
APPLICATION_KIND = "application"


def provider_name(service: str) -> str:
    return f"{service}-provider"


def _authorization_uris(provider: dict) -> list[str]:
    return [uri["url"] for uri in provider.get("redirect_uris") or []
            if uri.get("redirect_uri_type") in (None, "authorization")]


@dataclass(frozen=True)
class Client:
    """What one service needs in Authentik."""

    service: str
    redirect_uris: tuple[str, ...]
    client_secret: str = field(repr=False, default="")


@dataclass
class Actual:
    providers: dict[str, dict]
    """OAuth2 providers by client_id."""
    applications: dict[str, dict]
    """Applications by slug."""
    defaults: "Defaults"


@dataclass(frozen=True)
class CreateProvider:
    service: str


@dataclass(frozen=True)
class UpdateProvider:
    service: str
    pk: int
    patch: dict = field(repr=False)


@dataclass(frozen=True)
class DeleteProvider:
    service: str
    pk: int


@dataclass(frozen=True)
class CreateApplication:
    service: str


@dataclass(frozen=True)
class BindApplication:
    service: str


@dataclass(frozen=True)
class DeleteApplication:
    slug: str


class AuthentikProvider(Provider):
    name = "authentik"
    appliers = {CreateProvider: "create_provider", UpdateProvider: "update_provider",
                DeleteProvider: "delete_provider", CreateApplication: "create_application",
                BindApplication: "bind_application", DeleteApplication: "delete_application"}

    def __init__(self, workspace: "Workspace", options=None, client: "AuthentikClient | None" = None):
        from ecoctl.plan import Options

        super().__init__(workspace, options or Options())
        self._client = client
        self._actual: Actual | None = None

    @cached_property
    def client(self) -> "AuthentikClient":
        if self._client is None:
            from ecoctl.clients.authentik import AuthentikClient

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
            secret = self.workspace.env.get(contract.client_secret_key(service)) or ""
            wanted[service] = Client(service, tuple(dict.fromkeys(uris)), secret)
        return wanted

    # -- diff ----------------------------------------------------------------------------------

    def provider_fields(self, client: Client, defaults: "Defaults") -> dict[str, Any]:
        return {
            "name": provider_name(client.service),
            "client_type": "confidential",
            "client_id": client.service,
            "client_secret": client.client_secret,
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
        if actual.get("client_secret") != want["client_secret"]:
            patch["client_secret"] = want["client_secret"]
            words.append(f"client_secret differs from .env {contract.client_secret_key(client.service)}")
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
        for service, client in desired.items():
            name = provider_name(service)
            existing = actual.providers.get(service)
            if existing is None:
                uris = ", ".join(client.redirect_uris)
                changes.append(Change(self.name, "create", PROVIDER_KIND, name, f"client_id {service}, redirect {uris}",
                                      service=service, payload=CreateProvider(service)))
            else:
                patch, words = self.provider_patch(client, existing, actual.defaults)
                if patch:
                    changes.append(Change(self.name, "update", PROVIDER_KIND, name, "; ".join(words),
                                          service=service, payload=UpdateProvider(service, existing["pk"], patch)))
            app = actual.applications.get(service)
            if app is None:
                changes.append(Change(self.name, "create", APPLICATION_KIND, service, f"bound to {name}",
                                      service=service, payload=CreateApplication(service)))
            elif existing is None or app.get("provider") != existing["pk"]:
                changes.append(Change(self.name, "update", APPLICATION_KIND, service, f"bind to {name}",
                                      service=service, payload=BindApplication(service)))
        for slug, app in actual.applications.items():
            if slug in desired or app.get("meta_publisher") != self.marker:
                continue
            changes.append(Change(self.name, "delete", APPLICATION_KIND, slug, "service removed",
                                  service=slug, payload=DeleteApplication(slug)))
            bound = next((p for p in actual.providers.values() if p["pk"] == app.get("provider")), None)
            if bound is not None and bound["client_id"] == slug and bound["name"] == provider_name(slug):
                changes.append(Change(self.name, "delete", PROVIDER_KIND, bound["name"], "service removed",
                                      service=slug, payload=DeleteProvider(slug, bound["pk"])))
        return changes

    # -- apply ---------------------------------------------------------------------------------

    def _defaults(self) -> "Defaults":
        if self._actual is None:
            self.read()
        assert self._actual is not None
        return self._actual.defaults

    def _find_provider(self, service: str) -> dict | None:
        found = [p for p in self.client.list(PROVIDERS, client_id=service) if p["client_id"] == service]
        return found[0] if found else None

    def create_provider(self, payload: CreateProvider) -> None:
        from ecoctl.clients.authentik import AuthentikValidation

        wanted = self.desired()[payload.service]
        try:
            provider = self.client.post(PROVIDERS, self.provider_fields(wanted, self._defaults()))
        except AuthentikValidation as exc:
            # a create retried after a lost answer, or made by a concurrent run: converge on it
            provider = self._find_provider(payload.service) if "client_id" in exc.fields else None
            if provider is None:
                raise
            patch, _ = self.provider_patch(wanted, provider, self._defaults())
            if patch:
                provider = self.client.patch(f"{PROVIDERS}{provider['pk']}/", patch)
        self._remember(provider)

    def update_provider(self, payload: UpdateProvider) -> None:
        self._remember(self.client.patch(f"{PROVIDERS}{payload.pk}/", payload.patch))

    def delete_provider(self, payload: DeleteProvider) -> None:
        self.client.delete(f"{PROVIDERS}{payload.pk}/")

    def create_application(self, payload: CreateApplication) -> None:
        from ecoctl.clients.authentik import AuthentikValidation

        service = payload.service
        provider = self._provider(service)
        body = {"name": service, "slug": service, "provider": provider["pk"], "meta_publisher": self.marker,
                "meta_description": f"{service}, managed by ecoctl (ecosystem {self.workspace.ecosystem.name})"}
        try:
            self.client.post(APPLICATIONS, body)
        except AuthentikValidation as exc:
            if "slug" not in exc.fields:
                raise
            self.client.patch(f"{APPLICATIONS}{service}/", {"provider": provider["pk"]})

    def bind_application(self, payload: BindApplication) -> None:
        self.client.patch(f"{APPLICATIONS}{payload.service}/", {"provider": self._provider(payload.service)["pk"]})

    def delete_application(self, payload: DeleteApplication) -> None:
        self.client.delete(f"{APPLICATIONS}{payload.slug}/")

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
