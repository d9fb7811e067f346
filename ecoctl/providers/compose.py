"""The `compose` provider: compose files match ecosystem.yaml, edited round-trip.

Core services' images, published ports and container names follow ecosystem.yaml; each service with pattern `compose` has an entry in
compose.yaml, each with pattern `separate` its own `services/<name>/compose.yaml` joining the
external `portfolio-network` (the seed's pattern 2); `external` services have none. Entries ecoctl
manages carry the label `ecoctl.service`; anything else in the files is the user's and is kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecoctl.errors import UsageError
from ecoctl.files import write_atomic
from ecoctl.model import ServiceSpec, parse_yaml, yaml_roundtrip
from ecoctl.names import database_name, db_password_key, env_prefix, role_name
from ecoctl.plan import Change, Provider

LABEL = "ecoctl.service"
NETWORK = "portfolio-network"
CORE_IMAGES = {"postgres": "postgres", "redis": "redis", "authentik-server": "authentik",
               "authentik-worker": "authentik", "prometheus": "prometheus", "grafana": "grafana"}


def core_settings(ecosystem) -> dict[str, dict[str, Any]]:
    """What ecosystem.yaml decides about each core compose service: image, host port, container name."""
    core = ecosystem.core
    published = {"postgres": (core.postgres.port, 5432), "redis": (core.redis.port, 6379),
                 "authentik-server": (core.authentik.port, 9000),
                 "prometheus": (core.monitoring.prometheus_port, 9090),
                 "grafana": (core.monitoring.grafana_port, 3000)}
    settings = {}
    for key, image in CORE_IMAGES.items():
        wanted: dict[str, Any] = {"image": ecosystem.image(image),
                                  "container_name": f"{ecosystem.name}-{key}"}
        if key in published:
            host, container = published[key]
            wanted["ports"] = [f"127.0.0.1:{host}:{container}"]
        settings[key] = wanted
    return settings


def service_entry(workspace, name: str, spec: ServiceSpec, build_context: str) -> dict[str, Any]:
    ecosystem = workspace.ecosystem
    prefix = env_prefix(name)
    authentik = ecosystem.core.authentik
    jwks_url = (f"{authentik.url.rstrip('/')}/application/o/{name}/jwks/" if authentik.url
                else f"http://authentik-server:9000/application/o/{name}/jwks/")
    external_pg = ecosystem.core.postgres.external
    entry: dict[str, Any] = {
        "build": {"context": build_context, "args": {"BASE_IMAGE": ecosystem.image("python")}},
        "image": f"{ecosystem.name}/{name}:latest",
        "container_name": f"{ecosystem.name}-{name}",
        "init": True,
        "restart": "unless-stopped",
        "labels": {LABEL: name},
        "environment": {
            "PORT": str(spec.port),
            "DATABASE_HOST": external_pg.host if external_pg else "postgres",
            "DATABASE_PORT": str(external_pg.port) if external_pg else "5432",
            "DATABASE_NAME": database_name(name),
            "DATABASE_USER": role_name(name),
            "DATABASE_PASSWORD": f"${{{db_password_key(name)}:?run ecoctl apply to create it}}",
            "OIDC_ISSUER": f"${{{prefix}_OIDC_ISSUER:-}}",
            "OIDC_CLIENT_ID": f"${{{prefix}_OIDC_CLIENT_ID:-{name}}}",
            "OIDC_JWKS_URL": jwks_url,
            "REDIS_HOST": "redis",
            "REDIS_PORT": "6379",
        },
        "ports": [f"127.0.0.1:{spec.port}:{spec.port}"],
        "networks": [NETWORK],
    }
    if external_pg:
        entry["environment"]["DATABASE_SSLMODE"] = external_pg.sslmode
    if spec.pattern == "compose" and not external_pg:
        entry["depends_on"] = {"postgres": {"condition": "service_healthy"}}
    return entry


def separate_file(workspace, name: str, spec: ServiceSpec) -> dict[str, Any]:
    return {"name": f"{workspace.ecosystem.name}-{name}",
            "services": {name: service_entry(workspace, name, spec, ".")},
            "networks": {NETWORK: {"external": True}}}


SEPARATE_HEADER = ("# {name}: deployed on its own (pattern `separate`), joining the ecosystem's network.\n"
                   "# Secrets come from the ecosystem's .env: `ecoctl up` runs\n"
                   "#   docker compose --env-file ../../.env -f compose.yaml up -d\n")


class ComposeFile:
    def __init__(self, path: Path):
        self.path = path
        self.exists = path.exists()
        self.document = parse_yaml(path, path.read_text()) if self.exists else None
        if self.exists and not isinstance(self.document, dict):
            raise UsageError(f"{path}: not a compose file (expected a mapping)")

    def services(self) -> dict:
        return (self.document or {}).get("services") or {}

    def save(self) -> None:
        import io

        buffer = io.StringIO()
        yaml_roundtrip().dump(self.document, buffer)
        write_atomic(self.path, buffer.getvalue())


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _shown(value: Any) -> str:
    value = _plain(value)
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _differing_keys(current: dict, desired: dict) -> list[str]:
    """Top-level keys of `desired` whose value differs; `environment` compares only ecoctl's keys."""
    keys = []
    for key, value in desired.items():
        have = _plain(current.get(key))
        if key == "environment" and isinstance(have, dict):
            if any(have.get(var) != val for var, val in value.items()):
                keys.append(key)
        elif have != value:
            keys.append(key)
    return keys


def _merge_entry(entry: dict, desired: dict) -> None:
    for key in _differing_keys(entry, desired):
        if key == "environment" and isinstance(entry.get(key), dict):
            entry[key].update(desired[key])
        else:
            entry[key] = desired[key]


class ComposeProvider(Provider):
    name = "compose"
    _main: ComposeFile | None = None

    @property
    def main_path(self) -> Path:
        return self.workspace.root / "compose.yaml"

    def separate_path(self, name: str) -> Path:
        return self.workspace.root / "services" / name / "compose.yaml"

    def desired(self) -> dict:
        ecosystem = self.workspace.ecosystem
        services = ecosystem.services
        return {
            "project": ecosystem.name,
            "core": core_settings(ecosystem),
            "compose": {name: service_entry(self.workspace, name, spec, f"./services/{name}")
                        for name, spec in services.items() if spec.pattern == "compose"},
            "separate": {name: separate_file(self.workspace, name, spec)
                         for name, spec in services.items() if spec.pattern == "separate"},
        }

    def read(self) -> dict:
        main = ComposeFile(self.main_path)
        separate = {}
        services_dir = self.workspace.root / "services"
        if services_dir.is_dir():
            for path in sorted(services_dir.glob("*/compose.yaml")):
                file = ComposeFile(path)
                managed = {key for key, entry in file.services().items()
                           if isinstance(entry, dict) and (entry.get("labels") or {}).get(LABEL)}
                if managed:
                    separate[path.parent.name] = file
        self._main = main if main.exists else None
        return {"main": main, "separate": separate}

    def diff(self, desired: dict, actual: dict) -> list[Change]:
        main: ComposeFile = actual["main"]
        changes: list[Change] = []
        if not main.exists:
            return [Change("compose", "create", "compose file", "compose.yaml",
                           "missing: run `ecoctl init --force` to re-create it")]
        for name in [*desired["compose"], *desired["separate"]]:
            if db_password_key(name) not in self.workspace.env:
                changes.append(Change("compose", "create", "secret", db_password_key(name),
                                      "in .env: compose.yaml refers to it", data=("secret", name, None)))
        current = main.services()
        if main.document.get("name") != desired["project"]:
            changes.append(Change("compose", "update", "compose project", "compose.yaml",
                                  f"name {main.document.get('name')} -> {desired['project']}",
                                  data=("project", "name", desired["project"])))
        for key, wanted in desired["core"].items():
            entry = current.get(key)
            if not isinstance(entry, dict):
                continue  # a core service the user removed from compose.yaml stays removed
            for field_name in _differing_keys(entry, wanted):
                changes.append(Change("compose", "update", f"compose {field_name}", key,
                                      f"{_shown(entry.get(field_name))} -> {_shown(wanted[field_name])}",
                                      data=("core", key, (field_name, wanted[field_name]))))
        managed = {key for key, entry in current.items()
                   if isinstance(entry, dict) and (entry.get("labels") or {}).get(LABEL)}
        for name, entry in desired["compose"].items():
            if name not in current:
                changes.append(Change("compose", "create", "compose service", name, data=("main", name, entry)))
            elif keys := _differing_keys(current[name], entry):
                changes.append(Change("compose", "update", "compose service", name,
                                      ", ".join(keys) + " differ", data=("main", name, entry)))
        for name in sorted(managed - set(desired["compose"])):
            changes.append(Change("compose", "delete", "compose service", name, data=("main", name, None)))
        separate: dict[str, ComposeFile] = actual["separate"]
        for name, document in desired["separate"].items():
            file = separate.get(name) or ComposeFile(self.separate_path(name))
            if not file.exists:
                changes.append(Change("compose", "create", "compose file", f"services/{name}/compose.yaml",
                                      data=("separate", name, document)))
            elif keys := _differing_keys(file.services().get(name) or {}, document["services"][name]):
                changes.append(Change("compose", "update", "compose file", f"services/{name}/compose.yaml",
                                      ", ".join(keys) + " differ", data=("separate", name, document)))
        for name in sorted(set(separate) - set(desired["separate"])):
            changes.append(Change("compose", "delete", "compose file", f"services/{name}/compose.yaml",
                                  data=("separate", name, None)))
        return changes

    def apply(self, change: Change) -> None:
        if change.data is None:
            raise UsageError(f"{self.main_path}: {change.detail}")
        where, name, value = change.data
        if where == "secret":
            if self.workspace.env.ensure_secret(db_password_key(name)):
                self.workspace.env.save()
            return
        if where == "separate":
            path = self.separate_path(name)
            if value is None:
                path.unlink(missing_ok=True)
                return
            file = ComposeFile(path)
            if not file.exists:
                import io

                buffer = io.StringIO()
                yaml_roundtrip().dump(value, buffer)
                write_atomic(path, SEPARATE_HEADER.format(name=name) + buffer.getvalue())
                return
            services = file.document.setdefault("services", {})
            if isinstance(services.get(name), dict):
                _merge_entry(services[name], value["services"][name])
            else:
                services[name] = value["services"][name]
            file.save()
            return
        # the document read for this plan, kept current by each save (parsing costs ~0.1 s)
        main = self._main or ComposeFile(self.main_path)
        self._main = main
        if where == "project":
            main.document["name"] = value
            main.save()
            return
        services = main.document.setdefault("services", {})
        if where == "core":
            field_name, field_value = value
            services[name][field_name] = field_value
        elif value is None:
            services.pop(name, None)
        elif name in services:
            _merge_entry(services[name], value)
        else:
            services[name] = value
        main.save()
