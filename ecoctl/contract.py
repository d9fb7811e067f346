"""The service contract: what every service receives, built here and nowhere else.

Every service (portfolio, each template's services, a team's own) reads the same variables:
`HOST`/`PORT` (where to listen), `DATABASE_HOST/PORT/NAME/USER/PASSWORD/SSLMODE`, `DATABASE_URL`, `OIDC_ISSUER`,
`OIDC_AUDIENCE`/`OIDC_CLIENT_ID`, `OIDC_CLIENT_SECRET` (a web app, a public client, gets no secret,
no `DATABASE_*` and no `REDIS_*`: it uses neither),
`OIDC_JWKS_URL` (Authentik's, or the local runtime's development sign-in's: the same URL shape),
`REDIS_HOST/PORT`, `REDIS_PASSWORD`, `REDIS_URL`
(`redis://:PASSWORD@host:port/0`: Redis requires the password in every runtime); a web app also gets
`API_URLS` (`name=url,...` of the services it `calls`), and under Authentik an API that web apps call
gets `OIDC_ACCEPTED_CLIENTS` (their issuers, audiences and JWKS URLs: see `accepted_clients`).

With `core.postgres.pooler`, DATABASE_HOST/PORT and DATABASE_URL name the pooler (transaction pooling:
no session state, no named prepared statements). With `core.postgres.replicas`, a service that `reads`
another's database (or sets `read_replica: true`) also gets DATABASE_READ_HOST/PORT and
DATABASE_READ_URL: the read-only replica, with the same credentials (its own database in the URL;
those of its `reads` by name).

Where a service runs decides how each value is spelt (`Target`):
- `compose`: core pieces by their compose names; secrets as `${KEY}` references to `.env`.
- `swarm`: as compose, but each secret as `NAME_FILE=/run/secrets/...` (Docker secrets).
- `local`: loopback addresses; secrets resolved from `.env` (handed to a supervised process).
- `external`: a host elsewhere; secrets as `<KEY from .env>` placeholders to copy by hand.
- `host`: a process started by hand on this host (`ecoctl env`, an IDE) against the running stack:
  127.0.0.1 and the published ports, secrets resolved from `.env` (under the local runtime it is
  exactly the `local` target).

`.env` keys are named here too (`secret_keys`); `Workspace.ensure_secrets` generates what they name.
The contract is built from plain data: the ecosystem model and the secrets (`.env`'s values);
`environment` is the shorthand for a caller holding a workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Mapping

from ecoctl import names, scaling, signin
from ecoctl.names import database_name, default_redirect_uri, env_prefix, role_name, sql_name

if TYPE_CHECKING:
    from ecoctl.model import Ecosystem
    from ecoctl.workspace import Workspace

Target = Literal["compose", "swarm", "local", "external", "host"]

COMPOSE_NETWORK = "portfolio-network"
"""The network every compose service joins (the seed's name; `separate` services join it too)."""

# Ports the core services listen on inside the compose network.
POSTGRES_PORT = 5432
REDIS_PORT = 6379
AUTHENTIK_PORT = 9000
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000

# .env keys of the core stack (per-service keys come from the functions below).
POSTGRES_PASSWORD = "POSTGRES_PASSWORD"
AUTHENTIK_STACK_SECRETS = ("AUTHENTIK_SECRET_KEY", "AUTHENTIK_BOOTSTRAP_TOKEN", "AUTHENTIK_BOOTSTRAP_PASSWORD")
GRAFANA_ADMIN_PASSWORD = "GRAFANA_ADMIN_PASSWORD"
REDIS_PASSWORD = "REDIS_PASSWORD"
"""Redis's `requirepass` (compose: `--requirepass`; local: its 0600 config file)."""
AUTHENTIK_DATABASE = "authentik"
"""Authentik's own database and role (`authentik`, `authentik_user`) when the stack runs it."""


def db_password_key(service: str) -> str:
    """The .env key holding SERVICE's database password (`authentik` is Authentik's own database)."""
    return f"{env_prefix(service)}_DB_PASSWORD"


def client_secret_key(service: str) -> str:
    """The .env key holding SERVICE's OAuth2 client secret (ecoctl generates it; Authentik, or the
    development sign-in, checks it)."""
    return signin.client_secret_key(service)


def client_id(ecosystem: "Ecosystem", service: str) -> str:
    """SERVICE's OAuth2 client_id, which is also its Authentik application slug (and so its issuer):
    `core.authentik.prefix` + the service name."""
    return names.client_id(ecosystem.core.authentik.prefix, service)


def issuer(ecosystem: "Ecosystem", service: str) -> str:
    """The `iss` of SERVICE's tokens: Authentik's per-application issuer (the development sign-in's too),
    at the origin people sign in at (the edge's sign-in origin when the edge is on)."""
    return names.issuer(ecosystem.sign_in_origin, client_id(ecosystem, service))


def redirect_uri(ecosystem: "Ecosystem", service: str, port: int, pattern: str = "compose",
                 host: str | None = None, public: bool = False) -> str:
    """SERVICE's OAuth2 redirect URI when none is given: on the edge's HTTPS origin when the edge is
    on (`/callback` for the web app at `/`, else under its API path), else on its own port. A web
    app (PUBLIC) other than the one at `/` stays on its own port: its pages load `/assets/` and
    `/config.json` from the root of their origin, which under `/api/<service>/` is not theirs."""
    at_root = service == ecosystem.core.edge.web
    if not ecosystem.edge_on or pattern == "external" or (public and not at_root):
        return default_redirect_uri(port, host)
    where = "/" if at_root else f"/api/{service}/"
    return f"{ecosystem.edge_url()}{where}callback"


CA_FILE_EXTERNAL = "/etc/ecoctl/ecosystem-ca.pem"
"""Where an external host keeps the ecosystem's root certificate (`ecoctl ca export` prints it)."""


def jwks_url(ecosystem: "Ecosystem", service: str, target: Target) -> str:
    """Where SERVICE fetches the keys its tokens are signed with: its application's JWKS, at
    Authentik or at the development sign-in (the same path), by name on the stack's network when
    the stack runs it in containers."""
    slug = client_id(ecosystem, service)
    if target in ("compose", "swarm") and (ecosystem.authentik_in_stack or ecosystem.signin_runs):
        host = "authentik-server" if ecosystem.authentik_in_stack else "signin"
        return f"http://{host}:{AUTHENTIK_PORT}/application/o/{slug}/jwks/"
    return f"{ecosystem.authentik_url}/application/o/{slug}/jwks/"


def api_urls(ecosystem: "Ecosystem", service: str, target: Target) -> str:
    """A web app's `API_URLS` (`name=url,...`): each service it `calls`, as TARGET reaches it (its
    web server forwards `/api/NAME/` there, so the browser talks to one origin)."""
    urls = []
    for api in ecosystem.services[service].calls:
        spec = ecosystem.services[api]
        if spec.pattern == "external" and spec.host:
            host = spec.host
        else:
            host = {"local": "127.0.0.1", "host": "127.0.0.1", "compose": api, "swarm": api}.get(
                target, "<this host's address>")
        urls.append(f"{api}=http://{host}:{spec.port}")
    return ",".join(urls)


def accepted_clients(ecosystem: "Ecosystem", service: str, target: Target) -> list[dict[str, str]]:
    """An API's `OIDC_ACCEPTED_CLIENTS`: under Authentik, each web app that `calls` SERVICE, as the
    (issuer, audience, JWKS URL) its access tokens carry: Authentik issues a web app's token under
    the web app's own issuer, with `aud` its client id, so the API accepts exactly these pairs besides
    its own (a web app not granted it is on no list). The development sign-in issues a web app's
    access token for the API it calls (the API's own iss and aud): none there."""
    if not ecosystem.authentik_used:
        return []
    return [{"issuer": issuer(ecosystem, web), "audience": client_id(ecosystem, web),
             "jwks_url": jwks_url(ecosystem, web, target)}
            for web, spec in ecosystem.services.items() if service in spec.calls]


def secret_keys(ecosystem: "Ecosystem") -> list[str]:
    """Every .env key the ecosystem needs: generated once by the workspace, kept forever."""
    keys = [] if ecosystem.core.postgres.external else [POSTGRES_PASSWORD]
    if ecosystem.authentik_in_stack:
        keys += [*AUTHENTIK_STACK_SECRETS, db_password_key(AUTHENTIK_DATABASE)]
    keys += [GRAFANA_ADMIN_PASSWORD, REDIS_PASSWORD, *signin.secret_keys(ecosystem)]
    if ecosystem.core.postgres.pooler and not ecosystem.core.postgres.external:
        keys.append(scaling.POOLER_STATS_PASSWORD)
    if ecosystem.core.postgres.replicas and not ecosystem.core.postgres.external:
        keys.append(scaling.REPLICATION_PASSWORD)
    for service in ecosystem.services:
        keys += service_secret_keys(ecosystem, service).values()
    return keys


def service_secret_keys(ecosystem: "Ecosystem", service: str) -> dict[str, str]:
    """Contract variable -> the .env key that holds its value, for SERVICE."""
    if not ecosystem.services[service].has_database:  # a web app: no database, no Redis, no client secret
        return {}
    return {"DATABASE_PASSWORD": db_password_key(service), "REDIS_PASSWORD": REDIS_PASSWORD,
            "OIDC_CLIENT_SECRET": client_secret_key(service)}


@dataclass(frozen=True)
class Endpoints:
    """Where a service finds the core pieces, as seen from where it runs."""

    database_host: str
    database_port: int
    """Where services reach the database: the pooler when the stack runs one."""
    redis_host: str
    redis_port: int
    replica: tuple[str, int] | None = None
    """The read replica (None: there is none)."""


def endpoints(ecosystem: "Ecosystem", target: Target) -> Endpoints:
    core = ecosystem.core
    postgres = core.postgres
    external_pg = postgres.external
    if target in ("compose", "swarm"):
        pg = (external_pg.host, external_pg.port) if external_pg else (
            ("pgbouncer", scaling.PGBOUNCER_PORT) if postgres.pooler else ("postgres", POSTGRES_PORT))
        replica = ("postgres-replica", scaling.REPLICA_PORT)
        return Endpoints(*pg, "redis", REDIS_PORT, replica if postgres.replicas and not external_pg else None)
    if target == "external":  # another host: PostgreSQL's TLS listener on core.address (no pooler, no replica)
        here = core.address or "<this host's address>"
        pg = (external_pg.host, external_pg.port) if external_pg else (here, postgres.port)
        return Endpoints(*pg, here, core.redis.port)
    here = "127.0.0.1" if target in ("local", "host") else "<this host's address>"
    pg = (external_pg.host, external_pg.port) if external_pg else (
        here, postgres.pooler_port if postgres.pooler else postgres.port)
    replica = (here, postgres.replica_port) if postgres.replicas and not external_pg else None
    return Endpoints(*pg, here, core.redis.port, replica)


def service_environment(ecosystem: "Ecosystem", service: str, target: Target,
                        secrets: Mapping[str, str]) -> dict[str, str]:
    """The variables SERVICE gets when it runs as TARGET (secrets spelt as the target needs), from
    SECRETS (.env's values)."""
    spec = ecosystem.services[service]
    where = endpoints(ecosystem, target)
    database, user = database_name(service), role_name(service)
    variables = {
        "PORT": str(spec.port),
        "HOST": "127.0.0.1" if target in ("local", "host") else "0.0.0.0",
        **({"DATABASE_HOST": where.database_host, "DATABASE_PORT": str(where.database_port),
            "DATABASE_NAME": database, "DATABASE_USER": user} if spec.has_database else {}),
        "OIDC_ISSUER": issuer(ecosystem, service),
        "OIDC_CLIENT_ID": client_id(ecosystem, service),
        "OIDC_AUDIENCE": client_id(ecosystem, service),
        **({"REDIS_HOST": where.redis_host, "REDIS_PORT": str(where.redis_port)} if spec.has_database else {}),
    }
    if where.replica and (spec.reads or spec.read_replica) and spec.has_database:
        variables["DATABASE_READ_HOST"], variables["DATABASE_READ_PORT"] = where.replica[0], str(where.replica[1])
    if ecosystem.core.postgres.external and spec.has_database:
        variables["DATABASE_SSLMODE"] = ecosystem.core.postgres.external.sslmode
    elif target == "external" and spec.has_database:  # PostgreSQL's TLS listener, verified against the CA
        variables["DATABASE_SSLMODE"] = "verify-full"
        variables["DATABASE_SSLROOTCERT"] = CA_FILE_EXTERNAL
    variables["OIDC_JWKS_URL"] = jwks_url(ecosystem, service, target)
    if spec.calls:
        variables["API_URLS"] = api_urls(ecosystem, service, target)
    if accepted := accepted_clients(ecosystem, service, target):
        import json

        variables["OIDC_ACCEPTED_CLIENTS"] = json.dumps(accepted, separators=(",", ":"))
    for variable, key in service_secret_keys(ecosystem, service).items():
        if target == "swarm":
            variables[f"{variable}_FILE"] = f"/run/secrets/{key}"
            continue
        variables[variable] = _secret_value(secrets, key, target)
    if target in ("compose", "local", "host", "external") and spec.has_database:
        password = variables["DATABASE_PASSWORD"]
        variables["DATABASE_URL"] = (f"postgresql://{user}:{password}@{where.database_host}:"
                                     f"{where.database_port}/{database}")
        if "DATABASE_SSLROOTCERT" in variables:
            variables["DATABASE_URL"] += f"?sslmode=verify-full&sslrootcert={CA_FILE_EXTERNAL}"
        if where.replica and (spec.reads or spec.read_replica):
            host, port = where.replica
            variables["DATABASE_READ_URL"] = f"postgresql://{user}:{password}@{host}:{port}/{database}"
    if spec.has_database:  # a service (a web app uses no Redis)
        redis_auth = f":{variables['REDIS_PASSWORD']}@" if target in ("compose", "local", "host", "external") else ""
        variables["REDIS_URL"] = f"redis://{redis_auth}{where.redis_host}:{where.redis_port}/0"
    return variables


OWNED_VARIABLES = frozenset({
    "HOST", "PORT", "DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME", "DATABASE_USER", "DATABASE_PASSWORD",
    "DATABASE_URL", "DATABASE_SSLMODE", "DATABASE_SSLROOTCERT", "DATABASE_READ_HOST", "DATABASE_READ_PORT",
    "DATABASE_READ_URL", "OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_AUDIENCE", "OIDC_CLIENT_SECRET", "OIDC_JWKS_URL",
    "OIDC_ACCEPTED_CLIENTS", "API_URLS", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_URL"})
"""Every variable `service_environment` can give (tests/unit/test_contract_owned.py holds it to that)."""


def stale_variables(environment: Mapping[str, object], desired: Mapping[str, str]) -> list[str]:
    """ENVIRONMENT's contract variables (or their `_FILE` forms) that DESIRED no longer gives: a
    service's entry keeps its own variables, never one the contract stopped giving it."""
    return [name for name in environment if name not in desired
            and (name in OWNED_VARIABLES or (name.endswith("_FILE") and name[:-5] in OWNED_VARIABLES))]


def environment(workspace: "Workspace", service: str, target: Target) -> dict[str, str]:
    """`service_environment` from what a workspace holds: its .env."""
    return service_environment(workspace.ecosystem, service, target, workspace.env.values)


def _secret_value(secrets: Mapping[str, str], key: str, target: Target) -> str:
    if target == "compose":
        return f"${{{key}:?run ecoctl apply to create it}}"
    if target == "external":
        return f"<{key} from .env>"
    return secrets.get(key) or ""


def secret_values(ecosystem: "Ecosystem", service: str, secrets: Mapping[str, str]) -> list[str]:
    """The secret values SERVICE's environment holds (to mask them wherever they appear)."""
    return [value for key in service_secret_keys(ecosystem, service).values() if (value := secrets.get(key))]


def missing_secrets(ecosystem: "Ecosystem", service: str, secrets: Mapping[str, str]) -> list[str]:
    """The .env keys SERVICE's environment needs that SECRETS does not hold yet."""
    return [key for key in service_secret_keys(ecosystem, service).values() if not secrets.get(key)]


__all__ = ["Target", "REDIS_PASSWORD", "service_environment", "environment", "secret_keys", "service_secret_keys",
           "db_password_key", "client_secret_key", "client_id", "issuer", "jwks_url", "endpoints", "sql_name",
           "secret_values", "missing_secrets"]
