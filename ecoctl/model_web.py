"""ecosystem.yaml's web apps and development users: `core.signin` and the checks of a service's
OAuth2 client, for `model`. A service's `client` is `confidential` (a service: client_credentials,
its secret in .env) or `public` (a web app in a browser: authorization code + PKCE S256, no
secret); a web app's `calls` name the services (APIs) its access tokens are for, its
`post_logout_redirect_uris` where the issuer may send the browser after signing out (default, as
for `redirect_uris`: its origins)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from ecoctl.support.checks import check_redirect_uri
from ecoctl.support.typed import Invalid, Match, Range, Record, checked


@dataclass
class SigninSettings(Record):
    """The development sign-in (an OIDC issuer on `core.authentik.port`): the local runtime's, and the
    container runtimes' with `in_containers`."""

    users: list[Annotated[str, Match(r"[a-z][a-z0-9_-]{0,31}")]] = field(default_factory=list)
    """Development users; passwords generated into .env (`ecoctl secrets password USER`)."""
    access_token_ttl: Annotated[int, Range(30, 86400)] = 300
    in_containers: bool = False
    """Development only: the docker and swarm runtimes run this sign-in (as the catalog component
    `signin`, in a container) instead of Authentik, when no `core.authentik.url` is set."""


def check_client(spec) -> None:
    """A service's OAuth2 client settings (a `model.ServiceSpec`): checked URIs; `calls` only for a web app."""
    spec.redirect_uris = [checked(check_redirect_uri, uri, "redirect_uris", index)
                          for index, uri in enumerate(spec.redirect_uris)]
    spec.post_logout_redirect_uris = [checked(check_redirect_uri, uri, "post_logout_redirect_uris", index)
                                      for index, uri in enumerate(spec.post_logout_redirect_uris)]
    if spec.calls and spec.client != "public":
        raise Invalid(("calls",), "only a web app (`client: public`) calls other services with its users' "
                      "tokens: set `client: public` or remove `calls`")


def check_calls(services: dict) -> None:
    """Every service a web app calls is a service (an API, not another web app) of the ecosystem."""
    for name, spec in services.items():
        for target in spec.calls:
            if target not in services or services[target].client == "public":
                raise Invalid(("services", name, "calls"), f"web app {name!r} calls {target!r}, which is not "
                              "a service (an API) here")
