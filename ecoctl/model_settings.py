"""ecosystem.yaml's settings under `core:` (PostgreSQL, Redis, Authentik, the sign-in, monitoring, the
edge, this host's address), the image defaults and the types they share, checked as they load
(see `model`, which holds the rest of the file and re-exports these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from ecoctl.support.checks import TAG, check_host
from ecoctl.support.typed import Invalid, Match, Range, Record, checked
from ecoctl.model_web import SigninSettings
from ecoctl.scaling import DataLayerSettings

AUTHENTIK_VERSION = "2025.12.4"
Pattern = Literal["compose", "separate", "external"]
Port = Annotated[int, Range(1, 65535)]
"""A TCP port: an integer 1-65535, strictly (`true` or "80" are refused, not read as 1 or 80)."""
DEFAULT_IMAGES = {
    "postgres": "postgres:16",
    "redis": "redis:7",
    "authentik": f"ghcr.io/goauthentik/server:{AUTHENTIK_VERSION}",
    "prometheus": "prom/prometheus:v3.5.0",
    "alertmanager": "prom/alertmanager:v0.28.1",
    "grafana": "grafana/grafana:12.2.0",
    "caddy": "caddy:2.6",
    "python": "python:3.12-slim",
    "go": "golang:1.26-bookworm",
    "node": "node:20-bookworm-slim",
    "base": "gcr.io/distroless/static-debian12:nonroot",
    "pgbouncer": "ecoctl/pgbouncer:1.18",  # Debian's pgbouncer with tests/docker/pgbouncer's entrypoint
}


@dataclass
class ExternalPostgres(Record):
    host: str
    port: Port = 5432
    admin_user: str = "postgres"
    password_env: str = "POSTGRES_PASSWORD"
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"


@dataclass
class PostgresSettings(DataLayerSettings, Record):
    """The stack's PostgreSQL (or an external one); the pooler's and the replica's keys are DataLayerSettings'."""

    version: Annotated[str, Match(TAG)] = "16"
    port: Port = 5432
    external: ExternalPostgres | None = None


@dataclass
class RedisSettings(Record):
    port: Port = 6379


@dataclass
class AuthentikSettings(Record):
    version: Annotated[str, Match(TAG)] = AUTHENTIK_VERSION
    port: Port = 9000
    url: str | None = None
    """An external Authentik's base URL; when set, the stack does not run its own."""
    token_env: str = "AUTHENTIK_BOOTSTRAP_TOKEN"
    signing_key: str = "authentik Self-signed Certificate"
    prefix: Annotated[str, Match(r"([a-z0-9][a-z0-9-]{0,40})?")] = ""
    """Prepended to every service's application slug and client_id (`init` records `<name>-`), so
    ecosystems sharing one Authentik each have their own `portfolio`; empty (older ecosystems): the
    service name itself, so nothing is renamed under a running system."""
    worker_replicas: Annotated[int, Range(0, 50)] = 1
    """Authentik worker replicas (swarm runtime; the other runtimes run one)."""
    concurrency: Annotated[int, Range(1, 32)] = 8
    """Authentik API requests `apply` keeps in flight at once (1: one change at a time)."""


@dataclass
class AlertmanagerSettings(Record):
    """Alertmanager (optional): where Prometheus sends the alerts of every service's rules."""

    enabled: bool = False
    port: Port = 9093
    webhook_url: str | None = None
    """Where Alertmanager POSTs the alerts (its webhook receiver); none: they are only shown."""

    def check(self) -> None:
        if self.webhook_url is not None:
            from urllib.parse import urlsplit

            parts = urlsplit(self.webhook_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise Invalid(("webhook_url",), "expected an http:// or https:// URL with a host",
                              self.webhook_url)


@dataclass
class MonitoringSettings(Record):
    enabled: bool = True
    prometheus_port: Port = 9090
    grafana_port: Port = 3001
    alertmanager: AlertmanagerSettings = field(default_factory=AlertmanagerSettings)


@dataclass
class EdgeSettings(Record):
    """The edge (Caddy): the web app and APIs on `port`, the sign-in on `auth_port` (see README)."""

    enabled: bool = False  # absent: off (older ecosystems keep their URLs); `init` writes `true`
    port: Port = 8443
    http_port: Port = 8480  # plain HTTP: redirects to HTTPS
    auth_port: Port = 9443
    domain: str | None = None  # a public DNS name: 443/80, certificates from ACME
    web: str = "web"  # the service (a web app) served at `/`; every service's API: /api/<name>/

    def check(self) -> None:
        if self.domain is not None:
            self.domain = checked(check_host, self.domain, "domain")


@dataclass
class CoreSettings(Record):
    postgres: PostgresSettings = field(default_factory=PostgresSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    authentik: AuthentikSettings = field(default_factory=AuthentikSettings)
    signin: SigninSettings = field(default_factory=SigninSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    edge: EdgeSettings = field(default_factory=EdgeSettings)
    address: str | None = None
    """How other hosts (pattern 3) reach this one: the edge and PostgreSQL's TLS listen there."""

    def check(self) -> None:
        if self.address is not None:
            self.address = checked(check_host, self.address, "address")
