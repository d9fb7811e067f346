"""How a rendered service is built and run, as its template declares (`run:` in template.yaml),
with the placeholders filled in: `run.local` for the local runtime, `run.docker` for images; and
which services are core (their template says `core: true`), so runtimes start them first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecoctl.errors import UsageError
from ecoctl.template_text import render_text
from ecoctl.service_templates import (MANIFEST, TemplateInfo, service_answers,
                                      template_variables)

@dataclass(frozen=True)
class LocalRun:
    """How the local runtime builds and supervises a service, placeholders filled in."""

    inputs: tuple[str, ...]
    """Globs (relative to the service folder) whose contents decide whether to build again."""
    build: tuple[tuple[str, ...], ...]
    """Commands run in order in the service folder when the inputs changed."""
    command: tuple[str, ...]
    """The supervised process (the service contract is its environment)."""
    requires: tuple[tuple[str, str], ...] = ()
    """(program, how to install it) the build needs on PATH (`requires:`), checked before it runs."""
    shared: str | None = None
    """What the build's output depends on when it is shared between services (one of SHARED_BY),
    else None: each service builds its own."""
    optional: bool = False
    """A missing program of `requires` skips the service (its template is `optional`) instead of failing."""


SHARED_BY = {"python-dependencies": "the Python dependencies its pyproject.toml / requirements.txt declare",
             "node-build": "declared inputs (the lockfile and sources) and Node.js version (a host-wide cache)"}
"""`run.local.shared`: the build output is the same for every service whose ... are the same, so
it is built once per distinct set and shared (the local runtime computes that key)."""


def template_of(workspace, name: str) -> TemplateInfo:
    """The template (at the version) SERVICE's files were made from. A service's record names the
    version; without one, the current template."""
    from ecoctl.template_record import read_record
    from ecoctl.template_sources import recorded_template, resolve

    source = resolve(workspace.ecosystem.services[name].template, workspace.template_dirs())
    folder = workspace.root / "services" / name
    record = read_record(folder) if folder.is_dir() else None
    return (recorded_template(record, source) if record is not None else None) or source.template


def is_core(workspace, name: str) -> bool:
    """Whether SERVICE's template is core (`core: true`)."""
    from ecoctl.template_sources import resolve

    return resolve(workspace.ecosystem.services[name].template, workspace.template_dirs()).template.core


def is_required_core(workspace, name: str) -> bool:
    """Whether SERVICE is a core service that cannot be removed (core, not `optional`)."""
    from ecoctl.template_sources import resolve

    template = resolve(workspace.ecosystem.services[name].template, workspace.template_dirs()).template
    return template.core and not template.optional


def core_services(workspace) -> list[str]:
    """The ecosystem's core services, in ecosystem.yaml's order."""
    return [name for name in workspace.ecosystem.services if is_core(workspace, name)]


def with_core_services(workspace, names: list[str]) -> list[str]:
    """What a runtime starts for NAMES: the core services first, then NAMES, each once."""
    return list(dict.fromkeys([*core_services(workspace), *names]))


def _run_context(workspace, template: TemplateInfo, name: str, **runtime: str) -> dict[str, Any]:
    ecosystem = workspace.ecosystem
    from ecoctl.model import DEFAULT_IMAGES

    return {**template_variables(template, service_answers(ecosystem, name)),
            "images": {key: ecosystem.image(key) for key in DEFAULT_IMAGES}, **runtime}


def local_run(workspace, name: str, build_dir: Path, python: str) -> LocalRun | None:
    """The template's `run.local` for SERVICE, rendered with the runtime's BUILD_DIR (a folder it
    owns for the service's build output) and PYTHON (the interpreter services' environments are
    made from); None when the template declares none."""
    template = template_of(workspace, name)
    declared = (template.run or {}).get("local")
    if not declared:
        return None
    where = f"{template.path / MANIFEST}: run.local"
    if not isinstance(declared, dict) or not isinstance(declared.get("command"), list):
        raise UsageError(f"{where} must have `command` (a list of arguments) and may have `build`, `inputs`")
    context = _run_context(workspace, template, name, build_dir=str(build_dir), python=python)

    def argv(raw: Any, what: str) -> tuple[str, ...]:
        if not isinstance(raw, list) or not raw or not all(isinstance(arg, (str, int)) for arg in raw):
            raise UsageError(f"{where}.{what} must be a non-empty list of arguments")
        return tuple(_program(render_text(str(arg), context, f"{where}.{what}")) if index == 0
                     else render_text(str(arg), context, f"{where}.{what}")
                     for index, arg in enumerate(raw))

    build = declared.get("build") or []
    if not isinstance(build, list):
        raise UsageError(f"{where}.build must be a list of commands")
    inputs = declared.get("inputs") or ["**/*"]
    if not isinstance(inputs, list) or not all(isinstance(glob, str) for glob in inputs):
        raise UsageError(f"{where}.inputs must be a list of file patterns")
    requires = declared.get("requires") or {}
    if not isinstance(requires, dict) or not all(isinstance(v, str) for v in requires.values()):
        raise UsageError(f"{where}.requires must map each program the build needs to how to install it")
    shared = declared.get("shared")
    if shared is not None and shared not in SHARED_BY:
        raise UsageError(f"{where}.shared must be one of: {', '.join(SHARED_BY)}")
    return LocalRun(tuple(inputs), tuple(argv(step, "build") for step in build), argv(declared["command"], "command"),
                    tuple((str(program), hint) for program, hint in requires.items()), shared, template.optional)


def docker_build_args(workspace, name: str) -> dict[str, str]:
    """The template's `run.docker.build_args` for SERVICE, rendered (images from ecosystem.yaml)."""
    template = template_of(workspace, name)
    declared = ((template.run or {}).get("docker") or {}).get("build_args")
    if not declared:
        return {"BASE_IMAGE": workspace.ecosystem.image("python")}
    context = _run_context(workspace, template, name)
    return {str(key): render_text(str(value), context, f"{template.name}: run.docker.build_args.{key}")
            for key, value in declared.items()}


def _program(arg: str) -> str:
    """`uv` is ecoctl's own (the wheel's binary) when installed with ecoctl; other names as they are."""
    if arg == "uv":
        try:
            from uv import find_uv_bin

            return find_uv_bin()
        except (ImportError, FileNotFoundError):
            return arg
    return arg
