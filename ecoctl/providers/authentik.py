"""Authentik: one OAuth2/OIDC provider (`<ecosystem>/<slug>-provider`, client_id `<slug>`) and one
application (slug `<slug>`) per service, where `<slug>` is `contract.client_id`: `core.authentik.prefix`
+ the service name. The client secret is ecoctl's (generated into `.env` before planning) and is set
on the provider, so the plan knows every value it writes; the issuer follows from the slug.

- Redirect URIs come from the service's `redirect_uris`; when empty, `contract.redirect_uri`:
  `http://127.0.0.1:<port>/callback` (`http://<host>:<port>/callback` for an external service), or
  on the edge's HTTPS origin when the edge is on: the same default `add-service` writes into ecosystem.yaml.
- A web app (`client: public`) gets a public provider: `client_type: public`, no client secret of
  ecoctl's, its redirect URIs (default: `/callback` on its origins) and, from Authentik 2026.5, its
  `post_logout_redirect_uris` as `redirect_uri_type: logout` entries, managed exactly (an older
  Authentik has no post-logout URIs to register). Drift is checked like a service's.
- Ownership: ecoctl changes or deletes only what this ecosystem created. Applications carry
  `meta_publisher: "ecoctl:<ecosystem name>"`; a provider (which has no free-text field) carries the
  ecosystem in its name, `<ecosystem>/<slug>-provider`, so it stays recognisable when a crash left it
  without its application. A provider named `<slug>-provider` (what ecoctl named it before) is ours when
  our application is bound to it; it keeps that name. An object with the service's slug/client_id that
  is not ours is a conflict: `plan` shows it, `apply` refuses before writing anything, and
  `--adopt` (Options.adopt) takes it over (renames the provider, sets the application's publisher).
- Updates PATCH only the differing fields. Scope mappings the admin added are kept (the openid, email
  and profile ones must be there); redirect URIs are exactly the spec's, matched `strict` (a `regex`
  entry with the same URL is drift: in a regex `.` matches anything; logout-type entries are kept);
  `sub_mode` is Authentik's default, `hashed_user_id`, and managed.
- Deleting a provider first deletes the service account Authentik made on its first client_credentials
  login (`ak-<provider name>-client_credentials`, only that exact name and only a service account).
- A plan is applied services side by side, up to `core.authentik.concurrency` requests in flight,
  each service's changes in plan order; the first failure stops new changes (`apply_all`).
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable

from ecoctl import contract
from ecoctl.names import default_redirect_uri, origins
from ecoctl.plan import Change, Options, Provider, RuntimeView
from ecoctl.providers.authentik_changes import (Actual, BindApplication, Client, CreateApplication,  # noqa: F401
                                                CreateProvider, DeleteApplication, DeleteProvider, UpdateProvider,
                                                authorization_uris, legacy_provider_name, logout_uris,
                                                provider_name, service_account)

if TYPE_CHECKING:
    from ecoctl.clients.authentik import AuthentikClient, Defaults
    from ecoctl.workspace import Workspace

PROVIDERS = "/providers/oauth2/"
APPLICATIONS = "/core/applications/"
USERS = "/core/users/"
PROVIDER_KIND = "oauth2 provider"
APPLICATION_KIND = "application"
SLUG_MAX = 50
"""Authentik's Application.slug is a Django SlugField (max_length 50)."""
SUB_MODE = "hashed_user_id"
"""Authentik's default `sub`: a hash of the user id, stable and not the user's e-mail or name."""


class AuthentikProvider(Provider):
    name = "authentik"

    def __init__(self, workspace: "Workspace", options: Options = Options(), runtime: RuntimeView | None = None,
                 client: "AuthentikClient | None" = None):
        super().__init__(workspace, options, runtime)
        self._client = client
        self._actual: Actual | None = None
        self._wanted: dict[str, Client] | None = None
        self._once = threading.Lock()

    @cached_property
    def client(self) -> "AuthentikClient":
        if self._client is None:
            from ecoctl.clients.authentik import AuthentikClient

            self._client = AuthentikClient.for_workspace(self.workspace)
        return self._client

    @property
    def marker(self) -> str:
        return f"ecoctl:{self.workspace.ecosystem.name}"

    def slug(self, service: str) -> str:
        return contract.client_id(self.workspace.ecosystem, service)

    def own_name(self, slug: str) -> str:
        return provider_name(self.workspace.ecosystem.name, slug)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # -- read / desired ------------------------------------------------------------------------

    def read(self) -> Actual:
        """The version first (its API is the one spoken), then the lists side by side."""
        from ecoctl.support.parallel import gather

        client = self.client
        client.version()
        defaults, providers, applications = gather([
            lambda: client.defaults(self.workspace.ecosystem.core.authentik.signing_key),
            lambda: client.list(PROVIDERS),
            lambda: client.list(APPLICATIONS, superuser_full_list="true")], limit=client.concurrency)
        self._actual = Actual({p["client_id"]: p for p in providers}, {a["slug"]: a for a in applications}, defaults)
        return self._actual

    def desired(self) -> dict[str, Client]:
        wanted = {}
        for service, spec in self.workspace.ecosystem.services.items():
            public = spec.client == "public"
            uris = (spec.redirect_uris or self.workspace.ecosystem.web_redirect_uris(service) if public
                    else spec.redirect_uris or [contract.redirect_uri(self.workspace.ecosystem, service, spec.port,
                                                                      spec.pattern, spec.host)])
            secret = "" if public else self.workspace.env.get(contract.client_secret_key(service)) or ""
            slug = self.slug(service)
            if len(slug) > SLUG_MAX:
                from ecoctl.errors import UsageError

                raise UsageError(f"Authentik application slug {slug!r} of service {service!r} is longer than "
                                 f"{SLUG_MAX} characters: shorten core.authentik.prefix in ecosystem.yaml "
                                 "(before the first apply) or the service name")
            logout = spec.post_logout_redirect_uris or self.workspace.ecosystem.origins(service)
            wanted[service] = Client(service, tuple(dict.fromkeys(uris)), secret, slug, public=public,
                                     logout_uris=tuple(dict.fromkeys(logout)) if public else ())
        self._wanted = wanted
        return wanted

    # -- diff ----------------------------------------------------------------------------------

    def managed_logout_uris(self, client: Client) -> tuple[str, ...]:
        """The post-logout URIs ecoctl registers for CLIENT (a web app's, where Authentik has them)."""
        from ecoctl.clients.authentik import speaks_logout_uris

        return client.logout_uris if client.public and speaks_logout_uris(self.client.version()) else ()

    def provider_fields(self, client: Client, defaults: "Defaults", name: str | None = None) -> dict[str, Any]:
        fields = {
            "name": name or self.own_name(client.slug),
            "client_type": "public" if client.public else "confidential",
            "client_id": client.slug,
            "client_secret": client.client_secret,
            "authorization_flow": defaults.authorization_flow,
            "invalidation_flow": defaults.invalidation_flow,
            "redirect_uris": [{"matching_mode": "strict", "url": url} for url in client.redirect_uris] +
                             [{"matching_mode": "strict", "url": url, "redirect_uri_type": "logout"}
                              for url in self.managed_logout_uris(client)],
            "signing_key": defaults.signing_key,
            "property_mappings": list(defaults.scope_mappings),
            "sub_mode": SUB_MODE,
        }
        if client.public:
            del fields["client_secret"]  # a public client has none of ours (Authentik keeps its own, unused)
        return fields

    def provider_patch(self, client: Client, actual: dict, defaults: "Defaults",
                       adopt: bool = False) -> tuple[dict, list[str]]:
        """The fields to PATCH (only those that differ) and words saying how they differ. A provider
        of ours with the old name keeps it (unless adopted: then it gets the marked name)."""
        legacy = not adopt and actual.get("name") == legacy_provider_name(client.slug)
        want = self.provider_fields(client, defaults, actual["name"] if legacy else None)
        patch: dict[str, Any] = {}
        words: list[str] = []
        for key in ("name", "client_type", "authorization_flow", "invalidation_flow", "signing_key"):
            if str(actual.get(key)) != str(want[key]):
                patch[key] = want[key]
                words.append(key)
        if actual.get("sub_mode") != want["sub_mode"]:
            patch["sub_mode"] = want["sub_mode"]
            words.append(f"sub_mode {actual.get('sub_mode')}->{want['sub_mode']}")
        if not client.public and actual.get("client_secret") != want["client_secret"]:
            patch["client_secret"] = want["client_secret"]
            words.append(f"client_secret differs from .env {contract.client_secret_key(client.service)}")
        current = authorization_uris(actual)
        logout_wanted = self.managed_logout_uris(client)
        logout_now = logout_uris(actual)
        if client.public and logout_wanted and logout_now != [(url, "strict") for url in logout_wanted]:
            patch["redirect_uris"] = want["redirect_uris"]
            now = [url for url, _ in logout_now]
            words.append("post-logout redirect_uris " + " ".join(
                [f"+{u}" for u in logout_wanted if u not in now] + [f"-{u}" for u in now if u not in logout_wanted]
                or ["reordered or not strict"]))
        if current != [(url, "strict") for url in client.redirect_uris]:
            kept = ([] if logout_wanted else
                    [uri for uri in actual.get("redirect_uris") or [] if uri.get("redirect_uri_type") == "logout"])
            patch["redirect_uris"] = want["redirect_uris"] + kept
            current_uris = [url for url, _ in current]
            added = [url for url in client.redirect_uris if url not in current_uris]
            removed = [url for url in current_uris if url not in client.redirect_uris]
            modes = [f"{url} {mode}->strict" for url, mode in current if mode != "strict" and url in client.redirect_uris]
            words.append("redirect_uris " + " ".join([f"+{u}" for u in added] + [f"-{u}" for u in removed] + modes
                                                     or ["reordered"]))
        current_maps = [str(pk) for pk in actual.get("property_mappings") or []]
        missing_maps = [pk for pk in want["property_mappings"] if str(pk) not in current_maps]
        if missing_maps:
            patch["property_mappings"] = current_maps + missing_maps
            words.append("scope mappings openid/email/profile")
        return patch, words

    # -- ownership -----------------------------------------------------------------------------

    def owns_application(self, app: dict) -> bool:
        return app.get("meta_publisher") == self.marker

    def owns_provider(self, provider: dict, app: dict | None) -> bool:
        """Named with our marker, or (made before the marker) `<slug>-provider` bound to our application."""
        slug = provider["client_id"]
        if provider.get("name") == self.own_name(slug):
            return True
        return (provider.get("name") == legacy_provider_name(slug) and app is not None
                and self.owns_application(app) and app.get("provider") == provider["pk"])

    def unowned(self, service: str, kind: str, name: str, why: str) -> Change:
        """The conflict of an object with SERVICE's name that this ecosystem did not make (WHY says who did)."""
        message = (f"Authentik {kind} {name} is not this ecosystem's ({why}): ecoctl leaves it alone; rename or "
                   "delete it in Authentik, set core.authentik.prefix in ecosystem.yaml, or pass --adopt to take it over")
        return self.conflict(kind, name, f"{why}; apply refuses, --adopt takes it over", message, service)

    def _conflicts(self, service: str, slug: str, existing: dict | None, app: dict | None) -> list[Change]:
        found = []
        if existing is not None and not self.owns_provider(existing, app):
            found.append(self.unowned(service, PROVIDER_KIND, existing["name"],
                                       f"client_id {slug} taken by a provider ecosystem "
                                       f"{self.workspace.ecosystem.name} did not create"))
        if app is not None and not self.owns_application(app):
            publisher = app.get("meta_publisher") or ""
            who = (f"made by {publisher}" if publisher.startswith("ecoctl:")
                   else f"made by hand or another tool, meta_publisher {publisher!r}")
            found.append(self.unowned(service, APPLICATION_KIND, slug, who))
        return found

    # -- diff ----------------------------------------------------------------------------------

    def diff(self, desired: dict[str, Client], actual: Actual) -> list[Change]:
        changes: list[Change] = []
        adopt = self.options.adopt
        for service, client in desired.items():
            slug = client.slug
            existing = actual.providers.get(slug)
            app = actual.applications.get(slug)
            conflicts = self._conflicts(service, slug, existing, app)
            if conflicts and not adopt:
                changes.extend(conflicts)
                continue
            app_taken = adopt and app is not None and not self.owns_application(app)
            name = self.own_name(slug)
            if existing is None:
                uris = ", ".join(client.redirect_uris)
                kind = ", public (PKCE)" if client.public else ""
                changes.append(Change(self.name, "create", PROVIDER_KIND, name, f"client_id {slug}{kind}, redirect {uris}",
                                      service=service, payload=CreateProvider(service)))
            else:
                taken = adopt and not self.owns_provider(existing, app)
                patch, words = self.provider_patch(client, existing, actual.defaults, adopt=taken)
                name = patch.get("name", existing["name"])
                if patch:
                    changes.append(Change(self.name, "update", PROVIDER_KIND, name,
                                          ("adopted; " if taken else "") + "; ".join(words),
                                          service=service, payload=UpdateProvider(service, existing["pk"], patch)))
            if app is None:
                changes.append(Change(self.name, "create", APPLICATION_KIND, slug, f"bound to {name}",
                                      service=service, payload=CreateApplication(service)))
            elif existing is None or app.get("provider") != existing["pk"] or not self.owns_application(app):
                changes.append(Change(self.name, "update", APPLICATION_KIND, slug,
                                      f"{'adopted; ' if app_taken else ''}bind to {name}",
                                      service=service, payload=BindApplication(service, adopt=app_taken)))
        changes.extend(self._removals({client.slug for client in desired.values()}, actual))
        return changes

    def _removals(self, wanted: set[str], actual: Actual) -> list[Change]:
        """Our objects whose service is gone: each application, then the provider bound to it (and our
        providers a crash left without their application)."""
        changes: list[Change] = []
        bound_pks = {app.get("provider") for app in actual.applications.values()}
        by_pk = {provider["pk"]: provider for provider in actual.providers.values()}
        for slug, app in actual.applications.items():
            if slug in wanted or not self.owns_application(app):
                continue
            changes.append(Change(self.name, "delete", APPLICATION_KIND, slug, "service removed",
                                  service=slug, payload=DeleteApplication(slug)))
            bound = by_pk.get(app.get("provider"))
            if bound is not None and bound["client_id"] == slug and self.owns_provider(bound, app):
                changes.append(Change(self.name, "delete", PROVIDER_KIND, bound["name"], "service removed",
                                      service=slug, payload=DeleteProvider(slug, bound["pk"], bound["name"])))
        for slug, provider in actual.providers.items():
            if slug not in wanted and provider["pk"] not in bound_pks and provider.get("name") == self.own_name(slug):
                changes.append(Change(self.name, "delete", PROVIDER_KIND, provider["name"], "service removed",
                                      service=slug, payload=DeleteProvider(slug, provider["pk"], provider["name"])))
        return changes

    # -- apply ---------------------------------------------------------------------------------

    def apply_all(self, changes: list[Change], on_change: Callable[[Change], None]) -> None:
        """Up to `core.authentik.concurrency` changes in flight; a service's changes one after the
        other, in plan order (its provider before its application, its application deleted first)."""
        from ecoctl.errors import ChangeFailed, EcoctlError
        from ecoctl.support.parallel import run_chains

        limit = self.client.concurrency  # the client is made here, once, then shared by the threads
        failure = run_chains(changes, lambda change: change.service, self.apply, on_change, limit)
        if failure is not None:
            change, error = failure
            if isinstance(error, EcoctlError):
                raise ChangeFailed(change, error) from error
            raise error

    def _defaults(self) -> "Defaults":
        with self._once:
            if self._actual is None:
                self.read()
        assert self._actual is not None
        return self._actual.defaults

    def _client_of(self, service: str) -> Client:
        with self._once:
            wanted = self._wanted if self._wanted is not None else self.desired()
        return wanted[service]

    def _find_provider(self, slug: str) -> dict | None:
        found = [p for p in self.client.list(PROVIDERS, client_id=slug) if p["client_id"] == slug]
        return found[0] if found else None

    def create_provider(self, payload: CreateProvider) -> None:
        from ecoctl.clients.authentik import AuthentikValidation

        wanted = self._client_of(payload.service)
        try:
            provider = self.client.post(PROVIDERS, self.provider_fields(wanted, self._defaults()))
        except AuthentikValidation as exc:
            # a create retried after a lost answer, or made by a concurrent run: converge on it, if ours
            provider = self._find_provider(wanted.slug) if "client_id" in exc.fields else None
            if provider is None or provider["name"] != self.own_name(wanted.slug):
                raise
            patch, _ = self.provider_patch(wanted, provider, self._defaults())
            if patch:
                provider = self.client.patch(f"{PROVIDERS}{provider['pk']}/", patch)
        self._remember(provider)

    def update_provider(self, payload: UpdateProvider) -> None:
        self._remember(self.client.patch(f"{PROVIDERS}{payload.pk}/", payload.patch))

    def delete_provider(self, payload: DeleteProvider) -> None:
        if payload.name:  # first its service account: once the provider is gone nothing names it
            username = service_account(payload.name)
            for user in self.client.list(USERS, username=username):
                if user.get("username") == username and user.get("type") == "service_account":
                    self.client.delete(f"{USERS}{user['pk']}/")
        self.client.delete(f"{PROVIDERS}{payload.pk}/")

    def create_application(self, payload: CreateApplication) -> None:
        from ecoctl.clients.authentik import AuthentikValidation

        service, slug = payload.service, self.slug(payload.service)
        provider = self._provider(service)
        body = {"name": service, "slug": slug, "provider": provider["pk"], "meta_publisher": self.marker,
                "meta_description": f"{service}, managed by ecoctl (ecosystem {self.workspace.ecosystem.name})"}
        try:
            self.client.post(APPLICATIONS, body)
        except AuthentikValidation as exc:
            if "slug" not in exc.fields:
                raise
            # made since the plan: a retried create of ours is bound; anything else is not ours to touch
            app = self.client.get(f"{APPLICATIONS}{slug}/")
            if not self.owns_application(app):
                from ecoctl.errors import EcoctlError

                raise EcoctlError(self.unowned(service, APPLICATION_KIND, slug, "made since the plan by someone else").payload.message)
            self.client.patch(f"{APPLICATIONS}{slug}/", {"provider": provider["pk"]})

    def bind_application(self, payload: BindApplication) -> None:
        body: dict[str, Any] = {"provider": self._provider(payload.service)["pk"]}
        if payload.adopt:
            body["meta_publisher"] = self.marker
        self.client.patch(f"{APPLICATIONS}{self.slug(payload.service)}/", body)

    def delete_application(self, payload: DeleteApplication) -> None:
        self.client.delete(f"{APPLICATIONS}{payload.slug}/")

    appliers = {CreateProvider: create_provider, UpdateProvider: update_provider, DeleteProvider: delete_provider,
                CreateApplication: create_application, BindApplication: bind_application,
                DeleteApplication: delete_application}

    def _remember(self, provider: dict) -> None:
        if self._actual is not None:
            self._actual.providers[provider["client_id"]] = provider

    def _provider(self, service: str) -> dict:
        slug = self.slug(service)
        provider = self._actual.providers.get(slug) if self._actual else None
        if provider is None:
            provider = self._find_provider(slug)
        if provider is None:
            from ecoctl.errors import EcoctlError

            raise EcoctlError(f"Authentik has no provider with client_id {slug!r}: run `ecoctl apply` again")
        return provider
