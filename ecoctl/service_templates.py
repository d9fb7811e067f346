"""Service templates: find them, read their manifest, render one into `services/NAME/`.

A template is a folder holding `template.yaml` (its manifest) and `files/`, the tree to render.
Files ending in `.j2` are Jinja2 templates (the suffix is dropped); other files are copied as they
are. Path components may hold placeholders, e.g. `files/{{ package_name }}/__init__.py.j2`.
Besides the manifest's variables, templates see `default_port`, `database_name`, `role_name` and
`env_prefix` (derived from `service_name`), and the filter `python_package` (`loyalty-points` →
`loyalty_points`; a name Python already uses, like `email`, gets `_service` appended).
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ecoctl import names
from ecoctl.errors import UsageError
from ecoctl.support.atomic import read_text, temp_prefix, write_atomic
from ecoctl.support.checks import printable
from ecoctl.support.resources import templates_dir
from ecoctl.support.template_tree import tree_files
from ecoctl.template_text import python_package, render_file, render_text  # noqa: F401 (python_package: part of this module's surface)

MANIFEST = "template.yaml"
FILES_DIR = "files"
SUFFIX = ".j2"
_MANIFEST_KEYS = ("name", "description", "default_port", "version", "core", "changelog", "variables", "run",
                  "extends", "client", "calls", "optional")
MAX_FILE = 4 << 20
"""Largest file a template may hold (4 MiB)."""
_SKIPPED = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".DS_Store", ".venv"})


@dataclass(frozen=True)
class TemplateVariable:
    name: str
    default: Any = None
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    description: str
    path: Path
    default_port: int
    variables: tuple[TemplateVariable, ...] = ()
    source: str = "shipped"
    """`shipped` (inside ecoctl), `team` (an ecosystem's templates_dir) or `path` (given as a path)."""
    version: int = 1
    changelog: tuple[tuple[int, str], ...] = field(default=(), hash=False, compare=False)
    """(version, summary) per release, as the manifest lists them."""
    run: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    """How each runtime builds and starts a rendered service (`local`: inputs, build, command;
    `docker`: build_args), Jinja placeholders left for the runtime to fill; checked by the runtimes."""
    core: bool = False
    """Part of the core stack (`core: true`): `init` creates its service, named `core_service`;
    add-service refuses that name and the template, remove-service refuses the service, and every
    runtime starts it with any service it starts."""
    optional: bool = False
    """With `core`: `init` creates its service unless told `--without` it, and it is otherwise like any
    service (add-service, remove-service); a missing build requirement skips it instead of failing `up`."""
    base: "TemplateInfo | None" = field(default=None, hash=False, compare=False)
    """`extends: {template: NAME, version: N}`: the template (beside this one, at that version) whose
    files are rendered first, this one's replacing theirs; its variables and `run` are inherited."""
    client: str = "confidential"
    """`public`: a web app (a public OAuth2 client in a browser); `confidential`: a service."""
    calls: tuple[str, ...] = ()
    """A web app's default `calls` (the services whose APIs it calls), when add-service names none."""

    @property
    def files_dir(self) -> Path:
        return self.path / FILES_DIR

    @property
    def core_service(self) -> str | None:
        """The name of the service a core template makes (service_name's default); None if not core."""
        if not self.core:
            return None
        return next(variable.default for variable in self.variables if variable.name == "service_name")


def load_template(path: Path, source: str = "path") -> TemplateInfo:
    """The template in folder `path`, its manifest checked; a bad manifest is one UsageError.
    Read once per process while the manifest is unchanged (a plan looks it up for every service)."""
    try:
        info = (Path(path) / MANIFEST).stat()
    except OSError:
        return _load_template(Path(path).resolve(), source)
    key = (str(path), source, info.st_ino, info.st_mtime_ns)
    if key not in _LOADED:
        _LOADED[key] = _load_template(Path(path).resolve(), source)
    return _LOADED[key]


_LOADED: dict[tuple[str, str, int, int], "TemplateInfo"] = {}


def _load_template(path: Path, source: str) -> TemplateInfo:
    from ruamel.yaml import YAML, YAMLError

    from ecoctl.support.yaml import c_safe_load

    manifest = path / MANIFEST
    if not manifest.is_file():
        raise UsageError(f"{path} is not a template: it has no {MANIFEST}")
    if os.path.islink(manifest) and not Path(os.path.realpath(manifest)).is_relative_to(path):
        raise UsageError(f"{manifest} is a link to {os.path.realpath(manifest)}, outside the template: "
                         "make it a file of the template")
    try:
        text = read_text(manifest)  # at most 1 MiB
        done, data = c_safe_load(manifest, text)  # the C parser; what it refuses, the pure one decides
        if not done:
            data = YAML(typ="safe", pure=True).load(text)
    except (YAMLError, UnicodeDecodeError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{manifest}:{mark.line + 1}" if mark is not None else str(manifest)
        raise UsageError(f"{where}: not valid YAML ({problem}); fix the file") from None
    if not isinstance(data, dict):
        raise UsageError(f"{manifest}:1: expected a mapping with name, description, default_port, variables")
    unknown = sorted(set(data) - set(_MANIFEST_KEYS))
    if unknown:
        raise UsageError(f"{_at(manifest, unknown[0])}: unknown key {unknown[0]!r}; use {', '.join(_MANIFEST_KEYS)}")
    name = data.get("name", path.name)
    if not isinstance(name, str) or not name or printable(name) != name or "\n" in name or "\t" in name:
        raise UsageError(f"{_at(manifest, 'name')}: `name` must be a non-empty string of one line, "
                         "without control characters")
    port = data.get("default_port", 8080)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise UsageError(f"{_at(manifest, 'default_port')}: `default_port` must be a port number (1-65535)")
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UsageError(f"{_at(manifest, 'version')}: `version` must be a whole number from 1 up")
    if not (path / FILES_DIR).is_dir():
        raise UsageError(f"{path} is not a template: it has no {FILES_DIR}/ folder")
    if not isinstance(data.get("run") or {}, dict):
        raise UsageError(f"{manifest}: `run` must map each runtime (local, docker) to how it builds and runs")
    variables = _variables(manifest, data.get("variables") or {})
    from ecoctl.template_extends import base_of, calls_of, client_of

    at = lambda key: _at(manifest, key)  # noqa: E731
    base = base_of(at, path, data.get("extends"), lambda folder: load_template(folder, source))
    if base is not None:  # the base's variables first: the extension's defaults may refer to them
        own = {variable.name for variable in variables}
        variables = tuple(v for v in base.variables if v.name not in own) + variables
    return TemplateInfo(name=name, description=printable(" ".join(str(data.get("description", "")).split())), path=path,
                        default_port=port, variables=variables, source=source, version=version,
                        changelog=_changelog(manifest, data.get("changelog")),
                        run=data.get("run") or (base.run if base else {}),
                        core=_core(manifest, data.get("core", False), variables), base=base,
                        optional=_optional(manifest, data.get("optional", False)),
                        client=client_of(at, data.get("client", base.client if base else "confidential")),
                        calls=calls_of(at, data.get("calls", [])))


def _at(manifest: Path, key: object, nested: bool = False) -> str:
    """`path:line` of KEY's first line in the manifest (top level, or indented with `nested`)."""
    pattern = re.compile(rf"^{'[ ]+' if nested else ''}['\"]?{re.escape(str(key))}['\"]?[ ]*:")
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if pattern.match(line):
            return f"{manifest}:{number}"
    return str(manifest)


def _core(manifest: Path, raw: Any, variables: tuple[TemplateVariable, ...]) -> bool:
    """`core: true` needs service_name's default: the name of the service `init` creates."""
    if not isinstance(raw, bool):
        raise UsageError(f"{_at(manifest, 'core')}: `core` must be true or false")
    named = [variable for variable in variables if variable.name == "service_name"]
    if raw and not (named and isinstance(named[0].default, str) and names.SERVICE_NAME.fullmatch(named[0].default)):
        raise UsageError(f"{_at(manifest, 'core')}: a core template must give service_name a default, a valid "
                         "service name: the service `ecoctl init` creates")
    return raw


def _optional(manifest: Path, raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise UsageError(f"{_at(manifest, 'optional')}: `optional` must be true or false")
    return raw


def _changelog(manifest: Path, raw: Any) -> tuple[tuple[int, str], ...]:
    if raw is None:
        return ()
    entries = raw if isinstance(raw, list) else None
    found = []
    for entry in entries or [None]:
        if not (isinstance(entry, dict) and set(entry) <= {"version", "summary"}
                and isinstance(entry.get("version"), int) and not isinstance(entry.get("version"), bool)):
            raise UsageError(f"{_at(manifest, 'changelog')}: `changelog` must be a list of {{version: N, summary: TEXT}}")
        found.append((entry["version"], printable(str(entry.get("summary", "")).strip())))
    return tuple(found)


def _variables(manifest: Path, raw: Any) -> tuple[TemplateVariable, ...]:
    if not isinstance(raw, dict):
        raise UsageError(f"{_at(manifest, 'variables')}: `variables` must map each name to its default or settings")
    found = []
    for name, spec in raw.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise UsageError(f"{_at(manifest, name, nested=True)}: variable name {name!r} must be a Python identifier")
        if isinstance(spec, dict):
            extra = sorted(set(spec) - {"default", "description", "required"})
            if extra:
                raise UsageError(f"{_at(manifest, name, nested=True)}: variable {name!r} has unknown key {extra[0]!r}; "
                                 "use default, description, required")
            found.append(TemplateVariable(name, spec.get("default"), str(spec.get("description", "")),
                                          bool(spec.get("required", False))))
        else:
            found.append(TemplateVariable(name, spec))
    return tuple(found)


def list_templates(extra_dirs: list[Path] | tuple[Path, ...] = ()) -> list[TemplateInfo]:
    """Shipped templates plus those in each of `extra_dirs` (a team's templates_dir), sorted by name.

    A team's template with the name of a shipped one replaces it.
    """
    found: dict[str, TemplateInfo] = {}
    for folder, source in [(templates_dir(), "shipped"), *((Path(d), "team") for d in extra_dirs)]:
        if not folder.is_dir():
            raise UsageError(f"templates folder {folder} does not exist: create it or fix templates_dir "
                             "in ecosystem.yaml")
        for child in sorted(folder.iterdir()):
            if (child / MANIFEST).is_file():
                template = load_template(child, source)
                found[template.name] = template
    return sorted(found.values(), key=lambda t: t.name)


def find_template(name_or_path: str, extra_dirs: list[Path] | tuple[Path, ...] = ()) -> TemplateInfo:
    """A template by name (shipped or team), or by path (`./my-template`, `/abs/path`, `~/t`)."""
    if _looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_dir():
            raise UsageError(f"template folder {name_or_path} does not exist")
        return load_template(path, "path")
    templates = list_templates(extra_dirs)
    for template in templates:
        if template.name == name_or_path:
            return template
    available = ", ".join(t.name for t in templates) or "none"
    raise UsageError(f"unknown template {name_or_path!r}: use one of {available}, or a path like "
                     "./my-template")


def _looks_like_path(value: str) -> bool:
    return value.startswith((".", "/", "~")) or os.sep in value or "/" in value


def template_variables(template: TemplateInfo, variables: dict[str, Any]) -> dict[str, Any]:
    """The full rendering context: given values, then manifest defaults (which may refer to earlier
    variables, e.g. `{{ service_name | replace('-', '_') }}`), then names derived from service_name."""
    context: dict[str, Any] = {"default_port": template.default_port}
    service = variables.get("service_name")
    if isinstance(service, str) and service:
        context.update(database_name=names.database_name(service), role_name=names.role_name(service),
                       env_prefix=names.env_prefix(service))
    for variable in template.variables:
        if variable.name in variables:
            context[variable.name] = variables[variable.name]
        elif variable.required or variable.default is None:
            raise UsageError(f"template {template.name} needs the variable {variable.name!r}")
        elif isinstance(variable.default, str) and ("{{" in variable.default or "{%" in variable.default):
            context[variable.name] = render_text(variable.default, context,
                                                    f"{template.name}: default of {variable.name}")
        else:
            context[variable.name] = variable.default
    context.update((k, v) for k, v in variables.items() if k not in context)
    package = context.get("package_name")
    if package is not None and (not isinstance(package, str) or not package.isidentifier()
                                or keyword.iskeyword(package)):
        raise UsageError(f"package_name {package!r} is not a valid Python package name: use letters, "
                         "digits and underscores, starting with a letter")
    return context


def render_service_files(template: TemplateInfo, variables: dict[str, Any],
                         wanted: Callable[[str], bool] | None = None) -> dict[str, bytes]:
    """Every file the template renders to: relative path (POSIX) → content. Writes nothing.

    With `wanted`, only the paths it accepts are rendered (names are always rendered: they are cheap)."""
    return {rel: content for rel, (content, _mode) in _render(template, variables, wanted).items()}


def service_file_paths(template: TemplateInfo, variables: dict[str, Any]) -> list[str]:
    """The relative paths the template renders to, without rendering any content."""
    paths: list[str] = []
    _render(template, variables, wanted=lambda rel: paths.append(rel) and False)
    return paths


def render_template(template: TemplateInfo, target: Path, variables: dict[str, Any], *,
                    overwrite: bool = False) -> list[Path]:
    """Render `template` into `target`; return the files written.

    Everything is rendered in memory first, so a template error writes nothing. A new `target` is
    built in a temporary sibling folder and renamed into place. Into an existing `target`, missing
    files are added (each atomically); files that differ are replaced only with `overwrite=True`,
    since the user may have edited them.
    """
    rendered = _render(template, variables)
    target = Path(target)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=temp_prefix(target.name), suffix=".tmp", dir=target.parent))
        try:
            for rel, (content, mode) in rendered.items():
                path = staging / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
                path.chmod(mode)
            staging.chmod(0o755)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return [target / rel for rel in rendered]
    if not target.is_dir():
        raise UsageError(f"{target} exists and is not a folder: move it away first")
    written = []
    for rel, (content, mode) in rendered.items():
        path = target / rel
        if path.is_file() and (not overwrite or path.read_bytes() == content):
            continue
        write_atomic(path, content, mode)
        written.append(path)
    return written


def _render(template: TemplateInfo, variables: dict[str, Any],
            wanted: Callable[[str], bool] | None = None) -> dict[str, tuple[bytes, int]]:
    context = template_variables(template, variables)
    out: dict[str, tuple[bytes, int]] = {}
    layers = []
    while template is not None:  # the base's files first; each extension's replace theirs
        layers.insert(0, template)
        template = template.base
    for layer in layers:
        out.update(_render_files(layer, context, wanted))
    return out


def _render_files(template: TemplateInfo, context: dict[str, Any],
                  wanted: Callable[[str], bool] | None) -> dict[str, tuple[bytes, int]]:
    root = template.files_dir
    _inside(template, root, f"{template.name}: {FILES_DIR}")
    out: dict[str, tuple[bytes, int]] = {}
    for rel_source in tree_files(root, _SKIPPED, (".pyc", ".pyo")):
        where = f"{template.name}: {rel_source}"
        rel = render_text(rel_source, context, where)
        if rel.endswith(SUFFIX):
            rel = rel[: -len(SUFFIX)]
        parts = rel.split("/")
        if any(part in ("", ".", "..") for part in parts) or rel.startswith("/"):
            raise UsageError(f"template {where} renders to the invalid path {rel!r}; check its variables")
        if wanted is not None and not wanted(rel):
            continue
        source = root / rel_source
        if os.path.islink(source):
            _inside(template, source, where)
        if source.stat().st_size > MAX_FILE:  # re-rendered by every plan, kept whole in the pristine render
            raise UsageError(f"template {where} is larger than {MAX_FILE >> 20} MiB: a template holds "
                             "source files; fetch large assets at build time instead")
        data = source.read_bytes()
        if rel_source.endswith(SUFFIX):
            try:
                data = render_file(data.decode("utf-8"), context, where).encode("utf-8")
            except UnicodeDecodeError:
                raise UsageError(f"template {where} is not UTF-8 text: drop its {SUFFIX} suffix") from None
        if rel in out:
            raise UsageError(f"template {where} renders to {rel}, which another file also renders to")
        out[rel] = (data, source.stat().st_mode & 0o777)
    return out


def _inside(template: TemplateInfo, path: Path, where: str) -> None:
    """Refuse PATH (a link) when it leaves the template's folder: a template renders its own files,
    never /etc/shadow or another ecosystem's .env a link points at."""
    target = Path(os.path.realpath(path))
    if not target.is_relative_to(os.path.realpath(template.path)):
        raise UsageError(f"template {where} is a link to {target}, outside the template: make it a file "
                         "of the template, or remove it")


def service_answers(ecosystem, name: str) -> dict[str, Any]:
    """The variables a service of ECOSYSTEM is rendered with (besides the manifest's defaults)."""
    spec = ecosystem.services[name]
    return {"service_name": name, "port": spec.port, "base_image": ecosystem.image("python")}
