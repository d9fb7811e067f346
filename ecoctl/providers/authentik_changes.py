"""What the Authentik provider plans with: the names it gives objects, what a service needs
(`Client`), what exists (`Actual`), and the typed payload of each kind of change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ecoctl.clients.authentik import Defaults


def provider_name(ecosystem: str, slug: str) -> str:
    """The name of a provider this ecosystem made: it carries the ownership marker."""
    return f"{ecosystem}/{slug}-provider"


def legacy_provider_name(slug: str) -> str:
    """The name ecoctl gave providers before the marker (kept: renaming would orphan its service account)."""
    return f"{slug}-provider"


def service_account(provider: str) -> str:
    """The user Authentik creates on a provider's first client_credentials login (trimmed to 150)."""
    return f"ak-{provider[:150 - 22]}-client_credentials"


def logout_uris(provider: dict) -> list[tuple[str, str]]:
    """(url, matching_mode) of the post-logout redirect URIs."""
    return [(uri["url"], uri.get("matching_mode") or "strict") for uri in provider.get("redirect_uris") or []
            if uri.get("redirect_uri_type") == "logout"]


def authorization_uris(provider: dict) -> list[tuple[str, str]]:
    """(url, matching_mode) of the authorization redirect URIs."""
    return [(uri["url"], uri.get("matching_mode") or "strict") for uri in provider.get("redirect_uris") or []
            if uri.get("redirect_uri_type") in (None, "authorization")]


@dataclass(frozen=True)
class Client:
    """What one service needs in Authentik."""

    service: str
    redirect_uris: tuple[str, ...]
    client_secret: str = field(repr=False, default="")
    slug: str = ""
    """Application slug and client_id (`contract.client_id`); the service name when not given."""
    public: bool = False
    """A web app's public client (no secret; the browser proves the code with PKCE)."""
    logout_uris: tuple[str, ...] = ()
    """A web app's post-logout redirect URIs (Authentik 2026.5+: `redirect_uri_type: logout`)."""

    def __post_init__(self) -> None:
        if not self.slug:
            object.__setattr__(self, "slug", self.service)


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
    name: str = ""
    """The provider's name: its client_credentials service account is deleted with it."""


@dataclass(frozen=True)
class CreateApplication:
    service: str


@dataclass(frozen=True)
class BindApplication:
    service: str
    adopt: bool = False
    """Also mark it as this ecosystem's (`--adopt`)."""


@dataclass(frozen=True)
class DeleteApplication:
    slug: str
