"""Service names, validated once at the edge, and the names derived from them."""

from __future__ import annotations

import re

from ecoctl.errors import UsageError

SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
RESERVED = frozenset({"postgres", "template0", "template1", "authentik", "redis", "prometheus",
                      "grafana", "all", "core",
                      # the core stack's own compose services and the local runtime's daemon
                      "authentik-server", "authentik-worker", "supervisord"})
YAML_WORDS = frozenset({"null", "true", "false", "yes", "no", "on", "off"})
"""Names that YAML reads as a null or a boolean (YAML 1.1, which Prometheus and others speak, for
yes/no/on/off): a service so named would be a key or a job name that is not its name."""


def check_service_name(name: str) -> str:
    """NAME, if it is a valid service name that no core component takes (a core template's
    service is refused by add-service, which knows the templates)."""
    if not SERVICE_NAME.fullmatch(name) or name.endswith("-") or "--" in name:
        raise UsageError(
            f"invalid service name {name!r}: use 2-40 characters, lowercase letters, digits and "
            "single hyphens, starting with a letter (e.g. loyalty-points)")
    if name in RESERVED:
        raise UsageError(f"service name {name!r} is reserved: choose another name")
    if name in YAML_WORDS:
        raise UsageError(f"service name {name!r} reads as a null or a boolean in YAML files "
                         "(prometheus.yml, compose.yaml): choose another name")
    return name


def sql_name(service: str) -> str:
    return service.replace("-", "_")


def database_name(service: str) -> str:
    return f"{sql_name(service)}_db"


def role_name(service: str) -> str:
    return f"{sql_name(service)}_user"


def readonly_role_name(service: str) -> str:
    return f"{sql_name(service)}_readonly"


def env_prefix(service: str) -> str:
    return sql_name(service).upper()


def default_redirect_uri(port: int, host: str | None = None) -> str:
    return f"http://{host or '127.0.0.1'}:{port}/callback"


def client_id(prefix: str, service: str) -> str:
    """SERVICE's OAuth2 client_id and Authentik application slug: `core.authentik.prefix` + name."""
    return f"{prefix}{service}"


def issuer(base_url: str, client: str) -> str:
    """An application's issuer (`iss`): Authentik's per-application one, the development sign-in's too."""
    return f"{base_url}/application/o/{client}/"


def origins(port: int) -> list[str]:
    """Where a web app on PORT answers on this host: what its URIs default to."""
    return [f"http://127.0.0.1:{port}/", f"http://localhost:{port}/"]
