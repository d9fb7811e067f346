"""`ecoctl token SERVICE`: a bearer token the local runtime's services accept."""

from __future__ import annotations

from ecoctl import contract
from ecoctl.local_auth import keys_dir, private_key_path, sign


def mint_token(workspace, service: str, subject: str = "local-user", ttl: int = 3600,
               scope: str = "openid email profile", extra: dict | None = None) -> str:
    """A token for SERVICE signed with the local key: the issuer and audience its contract names."""
    import time

    now = int(time.time())
    ecosystem = workspace.ecosystem
    claims = {"iss": contract.issuer(ecosystem, service), "sub": subject, "aud": contract.client_id(ecosystem, service),
              "iat": now, "nbf": now, "exp": now + ttl, "scope": scope, **(extra or {})}
    return sign(workspace, claims)


def token_for(workspace, service: str | None, subject: str = "local-user", ttl: int = 3600,
              scope: str = "openid email profile") -> str:
    """A token for `ecoctl token`: only where services trust the local key. SERVICE defaults to the
    (first) core service."""
    from ecoctl.errors import EcoctlError, UsageError

    if service is None:
        from ecoctl.template_run import core_services

        service = next(iter(core_services(workspace)), None)
        if service is None:
            raise UsageError("this ecosystem has no core service: name the service, `ecoctl token SERVICE`")
    if service not in workspace.ecosystem.services:
        raise UsageError(f"no service {service!r} in ecosystem.yaml")
    if workspace.ecosystem.authentik_used:
        raise EcoctlError(f"{service} trusts Authentik ({workspace.ecosystem.authentik_url}), "
                          "not a local key: get a token from Authentik's token endpoint with client id "
                          f"{contract.client_id(workspace.ecosystem, service)} and the secret in .env "
                          f"({contract.client_secret_key(service)})")
    if not private_key_path(workspace).exists():
        raise EcoctlError(f"no local signing key in {keys_dir(workspace)}: run `ecoctl init --force .` in the ecosystem directory")
    if not subject.strip():
        raise UsageError("--sub must not be empty: services refuse a token without a subject")
    if ttl <= 0:
        raise UsageError("--ttl must be a positive number of seconds")
    return mint_token(workspace, service, subject=subject, ttl=ttl, scope=scope)
