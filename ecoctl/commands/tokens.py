"""`ecoctl token SERVICE`: a bearer token the services accept, from the issuer they trust.

Through the issuer's token endpoint in every runtime: the local runtime's development sign-in or
Authentik (the same URL shape). A service's own token by client_credentials (its client id and
the secret in .env), or with `--user` a development user's, by the authorization code flow with
PKCE through the sign-in form (the local runtime's development sign-in only).
"""

from __future__ import annotations

from ecoctl import contract, names


def mint_token(workspace, service: str, subject: str = "local-user", ttl: int = 3600,
               scope: str = "openid email profile", extra: dict | None = None) -> str:
    """A token for SERVICE signed with the local key directly (for tests that need claims of their
    own): the issuer and audience its contract names."""
    import time

    from ecoctl.local_auth import sign

    now = int(time.time())
    ecosystem = workspace.ecosystem
    claims = {"iss": contract.issuer(ecosystem, service), "sub": subject, "aud": contract.client_id(ecosystem, service),
              "iat": now, "nbf": now, "exp": now + ttl, "scope": scope, **(extra or {})}
    return sign(workspace, claims)


def token_for(workspace, service: str | None, user: str | None = None, scope: str = "openid email profile") -> str:
    """A token for `ecoctl token`. SERVICE defaults to the (first) core service that is not a web app."""
    from ecoctl.clients import oidc
    from ecoctl.errors import UsageError
    from ecoctl.signin import password_key

    ecosystem = workspace.ecosystem
    if service is None:
        from ecoctl.template_run import core_services

        service = next((name for name in core_services(workspace) if ecosystem.services[name].client != "public"),
                       None)
        if service is None:
            raise UsageError("this ecosystem has no core service: name the service, `ecoctl token SERVICE`")
    if service not in ecosystem.services:
        raise UsageError(f"no service {service!r} in ecosystem.yaml")
    spec = ecosystem.services[service]
    if spec.client == "public":
        raise UsageError(f"{service} is a web app (a public client, no secret): sign in through it in a browser, "
                         "or ask for a token of a service it calls")
    client_id = contract.client_id(ecosystem, service)
    what = "the development sign-in" if ecosystem.signin_runs else f"Authentik ({ecosystem.authentik_url})"
    what = f"{what} (for {client_id})"
    secret = workspace.secret(contract.client_secret_key(service))
    if user is None:
        return oidc.client_credentials(ecosystem.authentik_url, client_id, secret, scope, what)
    if not ecosystem.signin_runs:
        raise UsageError("--user signs a development user in through the local runtime's development sign-in; "
                         "with Authentik, sign in through a web app")
    if user not in ecosystem.core.signin.users:
        raise UsageError(f"{user!r} is not a development user: add it to core.signin.users in ecosystem.yaml "
                         "and run `ecoctl up`")
    redirect_uri = (spec.redirect_uris or names.origins(spec.port))[0]
    return oidc.user_token(ecosystem.authentik_url, client_id, secret, redirect_uri, user,
                           workspace.secret(password_key(user)), scope, what)
