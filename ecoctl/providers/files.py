"""The `files` provider: the ecosystem's generated files exist.

Core files (compose.yaml, monitoring configs, .gitignore) are rendered from `stacks/core`, and each
service (the core portfolio service too) from its template. A missing file is created; a file that
exists belongs to the user and is never overwritten (compose.yaml and prometheus.yml are then kept
in shape by their own providers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ecoctl.support.atomic import write_atomic, write_tree
from ecoctl.plan import Change, Provider
from ecoctl.support.resources import stacks_dir
from ecoctl.template_record import RECORD_FILE, unrecorded_notice


def _core_sources() -> list[tuple[Path, str]]:
    """(source file, relative path of the file it becomes) for each file of the core stack."""
    core = stacks_dir() / "core"
    sources = []
    for path in sorted(core.rglob("*")):
        relative = path.relative_to(core).as_posix()
        if path.is_dir() or relative == "ecosystem.yaml.j2":
            continue
        if relative == "gitignore":
            relative = ".gitignore"
        sources.append((path, relative.removesuffix(".j2")))
    return sources


def render_core_files(context: dict) -> dict[str, bytes]:
    """Relative path -> content of the core stack's files for this ecosystem."""
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)
    files: dict[str, bytes] = {}
    for path, relative in _core_sources():
        if path.name.endswith(".j2"):
            files[relative] = env.from_string(path.read_text()).render(context).encode()
        else:
            files[relative] = path.read_bytes()
    return files


def core_context(workspace, in_containers: bool) -> dict:
    """What the core stack's templates are rendered with; IN_CONTAINERS: the stack runs in
    containers (`RuntimeView.in_containers`), where Prometheus listens on its container port."""
    from ecoctl import compose_core, components
    from ecoctl.clients.prometheus_config import render_job

    ecosystem = workspace.ecosystem
    jobs = [core_job(name, target, path)
            for name, (target, path) in components.scrape_targets(ecosystem, in_containers).items()]
    images = {key: ecosystem.image(key) for key in ("postgres", "redis", "authentik", "prometheus",
                                                      "grafana", "python")}
    return {"name": ecosystem.name, "core": ecosystem.core,
            "images": images, "prometheus_url": "http://prometheus:9090",
            "prometheus_jobs": "".join(render_job(job, 2, 4) for job in jobs),
            "authentik_version": ecosystem.core.authentik.version,
            "authentik_in_stack": ecosystem.authentik_in_stack, "compose": compose_core.text(ecosystem)}


def core_job(name: str, target: str, metrics_path: str):
    """A core component's scrape job as prometheus.yml first holds it (the prometheus provider keeps
    it so): its target, its metrics path only when it is not Prometheus's default."""
    from ecoctl.clients.prometheus_config import METRICS_PATH, ScrapeJob

    return ScrapeJob(name, (target,), None if metrics_path == METRICS_PATH else metrics_path, None)


@dataclass(frozen=True)
class WriteFiles:
    """Create these files (relative path -> content); a file that exists by then is left alone."""

    contents: dict[str, bytes]
    pristine: str | None = None
    """A new service's name: its files are also kept in `.ecoctl/pristine/NAME.json` (upgrade's base)."""


class FileGroup:
    """The files of one group ("core" or "services/<name>"): their paths, and their contents on demand."""

    def __init__(self, paths: list[str], render: Callable[[set[str]], dict[str, bytes]], notice: str = "",
                 unrecorded: bool = False):
        self.paths = paths
        self.render = render
        self.notice = notice
        """A service behind its template: said by `plan`, never applied (`ecoctl upgrade` does it)."""
        self.unrecorded = unrecorded
        """A service rendered before ecoctl recorded templates (no .ecoctl-template.yml)."""


def core_group(workspace, in_containers: bool) -> FileGroup:
    """The core files; rendered only when some are missing (a plan usually finds them all)."""
    def render(wanted: set[str]) -> dict[str, bytes]:
        return {p: c for p, c in render_core_files(core_context(workspace, in_containers)).items() if p in wanted}

    return FileGroup([relative for _path, relative in _core_sources()], render)


def service_group(workspace, name: str) -> FileGroup:
    spec = workspace.ecosystem.services[name]
    prefix = f"services/{name}/"
    from ecoctl.service_templates import render_service_files, service_answers, service_file_paths
    from ecoctl.template_record import read_pristine, read_record, record_for, upgrade_notice
    from ecoctl.template_sources import recorded_template, resolve

    source = resolve(spec.template, workspace.template_dirs())
    variables = service_answers(workspace.ecosystem, name)
    folder = workspace.root / "services" / name
    record = read_record(folder) if folder.exists() else None
    notice = upgrade_notice(name, record, source) if record is not None else ""
    unrecorded = folder.exists() and record is None
    if record is not None:
        # files gone missing come back as the recorded version made them: a newer template version
        # reaches the service only through `ecoctl upgrade`
        template = recorded_template(record, source, offline=True)  # a plan never fetches for a record
        if template is None:
            kept = read_pristine(workspace.root, name, record) or {}
            files = {prefix + rel: content for rel, content in kept.items()}
            return FileGroup(list(files), lambda wanted: {p: c for p, c in files.items() if p in wanted}, notice)
        variables = {**record.answers, **variables}
    else:
        template = source.template
    # the record says which version made the files: written with a new service only, never guessed
    record_path = [prefix + RECORD_FILE] if not folder.exists() else []

    def render(wanted: set[str]) -> dict[str, bytes]:
        rendered = render_service_files(template, variables, wanted=lambda rel: prefix + rel in wanted)
        files = {prefix + rel: content for rel, content in rendered.items()}
        if record_path and record_path[0] in wanted:
            files[record_path[0]] = record_for(source, variables).dump()
        return files

    return FileGroup([prefix + rel for rel in service_file_paths(template, variables)] + record_path,
                     render, notice, unrecorded)


class FilesProvider(Provider):
    name = "files"
    _desired: dict[str, FileGroup] | None = None

    def desired(self) -> dict[str, FileGroup]:
        """Group name ("core" or "services/<name>") -> its files (contents rendered only when missing)."""
        if self._desired is None:
            self._desired = {"core": core_group(self.workspace, self.runtime.in_containers)}
            for name in self.workspace.ecosystem.services:
                self._desired[f"services/{name}"] = service_group(self.workspace, name)
        return self._desired

    def read(self) -> set[str]:
        root = str(self.workspace.root)  # os.path: ~15 files a service, pathlib would triple the cost
        return {path for group in self.desired().values() for path in group.paths
                if os.path.exists(os.path.join(root, path))}

    def notices(self, desired: dict[str, FileGroup], actual: set[str]) -> list[str]:
        """Services behind their template, and those rendered before templates were recorded."""
        unrecorded = [name.removeprefix("services/") for name, group in desired.items() if group.unrecorded]
        return [group.notice for group in desired.values() if group.notice] + unrecorded_notice(unrecorded)

    def diff(self, desired: dict[str, FileGroup], actual: set[str]) -> list[Change]:
        changes = []
        for name, group in desired.items():
            missing = {path for path in group.paths if path not in actual}
            if not missing:
                continue
            contents = group.render(missing)
            if name == "core":
                changes += [Change(self.name, "create", "file", path, payload=WriteFiles({path: content}))
                            for path, content in contents.items()]
            else:
                total = len(group.paths)
                detail = f"{len(missing)} of {total} files missing" if len(missing) < total else f"{total} files"
                service = name.removeprefix("services/")
                fresh = f"{name}/{RECORD_FILE}" in contents
                changes.append(Change(self.name, "create", "service files", name, detail, service=service,
                                      payload=WriteFiles(contents, pristine=service if fresh else None)))
        return changes

    def write_files(self, payload: WriteFiles) -> None:
        root = self.workspace.root
        prefix = f"services/{payload.pristine}/" if payload.pristine else ""
        service_files = {rel.removeprefix(prefix): content for rel, content in payload.contents.items()}
        # a new service's folder appears whole (one rename); else each missing file on its own
        if not (prefix and all(rel.startswith(prefix) for rel in payload.contents)
                and write_tree(root / prefix, service_files)):
            for relative, content in payload.contents.items():
                path = root / relative
                if not path.exists():  # rendered files can be rendered again: no fsync each
                    write_atomic(path, content, mode=0o644, durable=False)
        if payload.pristine:
            from ecoctl.template_record import write_pristine

            write_pristine(root, payload.pristine, service_files)

    appliers = {WriteFiles: write_files}
