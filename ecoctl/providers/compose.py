"""The `compose` provider: compose files match ecosystem.yaml, edited round-trip.

Core services' images, published ports and container names follow ecosystem.yaml; each service with
pattern `compose` has an entry in compose.yaml, each with pattern `separate` its own
`services/<name>/compose.yaml` joining the external `portfolio-network` (the seed's pattern 2);
`external` services have none. Entries ecoctl manages carry the label `ecoctl.service`; in their
`environment` the contract's variables are ecoctl's, the rest (and everything else in the files) the user's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecoctl import contract
from ecoctl.errors import UsageError
from ecoctl.model import ServiceSpec
from ecoctl.plan import Change, Provider
from ecoctl.template_run import docker_build_args
from ecoctl.support.atomic import write_atomic
from ecoctl.support.yaml import dump_roundtrip, fast_load, parse_yaml

LABEL = "ecoctl.service"
NETWORK = contract.COMPOSE_NETWORK


def core_settings(ecosystem) -> dict[str, dict[str, Any]]:
    """What ecosystem.yaml decides about each core compose service (see ecoctl.compose_core)."""
    from ecoctl import compose_core

    return compose_core.settings(ecosystem)


def service_entry(workspace, name: str, spec: ServiceSpec, build_context: str) -> dict[str, Any]:
    ecosystem = workspace.ecosystem
    entry: dict[str, Any] = {
        "build": {"context": build_context, "args": docker_build_args(workspace, name)},
        "image": f"{ecosystem.name}/{name}:latest",
        "container_name": f"{ecosystem.name}-{name}",
        "init": True,
        "restart": "unless-stopped",
        "labels": {LABEL: name},
        "environment": contract.service_environment(ecosystem, name, "compose", workspace.env.values),
        "ports": [f"127.0.0.1:{spec.port}:{spec.port}"],
        "networks": [NETWORK],
    }
    if spec.pattern == "compose" and not ecosystem.core.postgres.external and spec.has_database:  # not a web app
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
    def __init__(self, path: Path, fallback: str | None = None):
        """A compose file as it is on disk; FALLBACK is the text it will have once created.

        `data` (plain values, read with the fast loader) is what a plan compares; `document`, the
        round-trip form that keeps comments, is parsed from the same text only when edited."""
        self.path = path
        self.exists = path.exists()
        self.text = path.read_text() if self.exists else fallback
        self.data = fast_load(path, self.text) if self.text is not None else None
        if self.data is not None and not isinstance(self.data, dict):
            raise UsageError(f"{path}: not a compose file (expected a mapping)")
        self._document = None

    @property
    def document(self):
        if self._document is None and self.text is not None:
            self._document = parse_yaml(self.path, self.text)
        return self._document

    def services(self) -> dict:
        return (self.data or {}).get("services") or {}

    def save(self) -> None:
        self.text = dump_roundtrip(self.document)
        write_atomic(self.path, self.text)
        self.data = fast_load(self.path, self.text)
        self.exists = True


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return list(map(_plain, value)) if isinstance(value, list) else value


def _shown(value: Any) -> str:
    value = _plain(value)
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _differing_keys(current: dict, desired: dict) -> list[str]:
    """Top-level keys of `desired` whose value differs; `environment` compares only ecoctl's keys."""
    keys = []
    for key, value in desired.items():
        have = _plain(current.get(key))
        if key == "environment" and isinstance(have, dict):
            if any(have.get(var) != val for var, val in value.items()) or _stale(have, desired):
                keys.append(key)
        elif have != value:
            keys.append(key)
    return keys


def _stale(environment: dict, desired: dict) -> list[str]:
    """A service entry's contract variables the contract no longer gives it (core entries: none)."""
    return contract.stale_variables(environment, desired["environment"]) if LABEL in desired.get("labels", {}) else []


def _merge_entry(entry: dict, desired: dict) -> None:
    for key in _differing_keys(entry, desired):
        if key == "environment" and isinstance(entry.get(key), dict):
            for variable in _stale(entry[key], desired):
                del entry[key][variable]
            entry[key].update(desired[key])
        else:
            entry[key] = desired[key]


@dataclass(frozen=True)
class SetProject:
    name: str


@dataclass(frozen=True)
class SetCoreField:
    service: str
    field: str
    value: Any


@dataclass(frozen=True)
class SetService:
    """An entry of compose.yaml (None deletes it)."""

    name: str
    entry: dict | None


@dataclass(frozen=True)
class SetSeparateFile:
    """`services/<name>/compose.yaml` (None deletes it)."""

    name: str
    document: dict | None


def _left_out(ecosystem) -> dict[str, str]:
    """Core services compose.yaml must not hold in this ecosystem, and why."""
    from ecoctl import compose_core, components

    return {component.name: reason for component in components.CATALOG
            if (reason := compose_core.left_out(ecosystem, component))}


def _switched_on(ecosystem) -> list[str]:
    """Core services ecosystem.yaml switches in and out (Alertmanager, the stack's own Authentik)
    that it switches in: compose.yaml gets them when they are missing, as `left_out` takes them out."""
    from ecoctl import compose_core

    return [component.name for component in compose_core.in_compose(ecosystem)
            if component.container.left_out is not None]


@dataclass(frozen=True)
class AddCoreService:
    """A core component's whole entry (and its data volume) added to compose.yaml."""

    name: str


def _drop_unused_anchors(document, services) -> None:
    """A shared environment (`x-NAME`) whose last core service is gone."""
    from ecoctl import compose_core, components

    for component in components.CATALOG:
        anchor = component.container.shared_environment if component.container else ""
        users = [other.name for other in components.CATALOG
                 if other.container and other.container.shared_environment == anchor]
        if anchor and not set(users) & set(services):
            document.pop(compose_core.shared_anchor(anchor), None)


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

    def _rendered_main(self) -> str:
        """compose.yaml as the `files` provider creates it when it is missing."""
        from ecoctl.providers.files import core_context, render_core_files

        return render_core_files(core_context(self.workspace, self.runtime.in_containers))["compose.yaml"].decode()

    def read(self) -> dict:
        main = ComposeFile(self.main_path)
        if not main.exists:
            main = ComposeFile(self.main_path, fallback=self._rendered_main())
        separate = {}
        services_dir = self.workspace.root / "services"
        if services_dir.is_dir():
            for path in sorted(services_dir.glob("*/compose.yaml")):
                file = ComposeFile(path)
                managed = {key for key, entry in file.services().items()
                           if isinstance(entry, dict) and (entry.get("labels") or {}).get(LABEL)}
                if managed:
                    separate[path.parent.name] = file
        self._main = main
        return {"main": main, "separate": separate}

    def diff(self, desired: dict, actual: dict) -> list[Change]:
        main: ComposeFile = actual["main"]
        changes: list[Change] = []
        current = main.services()
        if main.data.get("name") != desired["project"]:
            changes.append(Change(self.name, "update", "compose project", "compose.yaml",
                                  f"name {main.data.get('name')} -> {desired['project']}",
                                  payload=SetProject(desired["project"])))
        left_out = _left_out(self.workspace.ecosystem)
        for key, reason in left_out.items():
            if isinstance(current.get(key), dict):
                changes.append(Change(self.name, "delete", "compose service", key, reason,
                                      payload=SetService(key, None)))
        for key in _switched_on(self.workspace.ecosystem):
            if key not in current:
                changes.append(Change(self.name, "create", "compose service", key, "switched on in ecosystem.yaml",
                                      payload=AddCoreService(key)))
        for key, wanted in desired["core"].items():
            entry = current.get(key)
            if not isinstance(entry, dict) or key in left_out:
                continue  # a core service the user removed from compose.yaml stays removed
            for field_name in _differing_keys(entry, wanted):
                changes.append(Change(self.name, "update", f"compose {field_name}", key,
                                      f"{_shown(entry.get(field_name))} -> {_shown(wanted[field_name])}",
                                      payload=SetCoreField(key, field_name, wanted[field_name])))
        managed = {key for key, entry in current.items()
                   if isinstance(entry, dict) and (entry.get("labels") or {}).get(LABEL)}
        for name, entry in desired["compose"].items():
            if name not in current:
                changes.append(Change(self.name, "create", "compose service", name, service=name,
                                      payload=SetService(name, entry)))
            elif keys := _differing_keys(current[name], entry):
                changes.append(Change(self.name, "update", "compose service", name, ", ".join(keys) + " differ",
                                      service=name, payload=SetService(name, entry)))
        for name in sorted(managed - set(desired["compose"])):
            changes.append(Change(self.name, "delete", "compose service", name, service=name,
                                  payload=SetService(name, None)))
        separate: dict[str, ComposeFile] = actual["separate"]
        for name, document in desired["separate"].items():
            file = separate.get(name) or ComposeFile(self.separate_path(name))
            where = f"services/{name}/compose.yaml"
            if not file.exists:
                changes.append(Change(self.name, "create", "compose file", where, service=name,
                                      payload=SetSeparateFile(name, document)))
            elif keys := _differing_keys(file.services().get(name) or {}, document["services"][name]):
                changes.append(Change(self.name, "update", "compose file", where, ", ".join(keys) + " differ",
                                      service=name, payload=SetSeparateFile(name, document)))
        for name in sorted(set(separate) - set(desired["separate"])):
            changes.append(Change(self.name, "delete", "compose file", f"services/{name}/compose.yaml",
                                  service=name, payload=SetSeparateFile(name, None)))
        return changes

    # -- apply: the document read for this plan is edited and saved (parsing costs ~0.1 s) -------

    _batching = False

    def apply_all(self, changes: list[Change], on_change) -> None:
        """compose.yaml's changes are made in memory and written once (then reported done); each
        separate file is its own write, reported after it."""
        main = [change for change in changes if not isinstance(change.payload, SetSeparateFile)]
        if main and self._append_services(main):
            for change in main:
                on_change(change)
        elif main:
            self._batching = True
            try:
                for change in main:
                    self.apply(change)
            finally:
                self._batching = False
            self._main_file().save()
            for change in main:
                on_change(change)
        for change in changes:
            if isinstance(change.payload, SetSeparateFile):
                self.apply(change)
                on_change(change)

    def _append_services(self, changes: list[Change]) -> bool:
        """New service entries only: their text is inserted into compose.yaml (no round-trip of the
        whole file), when `support.yaml_append` can; False leaves it to the round-trip edit."""
        from ecoctl.support.yaml_append import appended

        main = self._main_file()
        if (not all(isinstance(change.payload, SetService) and change.payload.entry is not None for change in changes)
                or not main.exists or main._document is not None or main.data is None):
            return False
        result = appended(main.path, main.text, main.data, "services",
                          {change.payload.name: change.payload.entry for change in changes})
        if result is None:
            return False
        write_atomic(main.path, result[0])
        main.text, main.data = result
        return True

    def _save_main(self) -> None:
        if not self._batching:
            self._main_file().save()

    def _main_file(self) -> ComposeFile:
        if self._main is None or (not self._main.exists and self.main_path.exists()):
            self._main = ComposeFile(self.main_path, fallback=self._rendered_main())
        return self._main

    def set_project(self, payload: SetProject) -> None:
        main = self._main_file()
        main.document["name"] = payload.name
        self._save_main()

    def set_core_field(self, payload: SetCoreField) -> None:
        main = self._main_file()
        main.document.setdefault("services", {})[payload.service][payload.field] = payload.value
        self._save_main()

    def set_service(self, payload: SetService) -> None:
        main = self._main_file()
        services = main.document.setdefault("services", {})
        if payload.entry is None:
            services.pop(payload.name, None)
            _drop_unused_anchors(main.document, services)
        elif payload.name in services:
            _merge_entry(services[payload.name], payload.entry)
        else:
            services[payload.name] = payload.entry
        self._save_main()

    def set_separate_file(self, payload: SetSeparateFile) -> None:
        name, document = payload.name, payload.document
        path = self.separate_path(name)
        if document is None:
            path.unlink(missing_ok=True)
            return
        file = ComposeFile(path)
        if not file.exists:
            write_atomic(path, SEPARATE_HEADER.format(name=name) + dump_roundtrip(document))
            return
        services = file.document.setdefault("services", {})
        if isinstance(services.get(name), dict):
            _merge_entry(services[name], document["services"][name])
        else:
            services[name] = document["services"][name]
        file.save()

    def add_core_service(self, payload: AddCoreService) -> None:
        from ecoctl import compose_core, components

        component = components.named(payload.name)
        main = self._main_file()
        main.document.setdefault("services", {})[payload.name] = compose_core.entry(self.workspace.ecosystem, component)
        if component.data:
            if not isinstance(main.document.get("volumes"), dict):
                main.document["volumes"] = {}
            main.document["volumes"].setdefault(component.data, None)
        self._save_main()

    appliers = {SetProject: set_project, SetCoreField: set_core_field, SetService: set_service,
                AddCoreService: add_core_service,
                SetSeparateFile: set_separate_file}
