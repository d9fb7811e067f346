"""What a rendered service was made from: `services/NAME/.ecoctl-template.yml`, committed with its code.

    # Written by ecoctl when it rendered this service; `ecoctl upgrade` reads it. Commit it.
    template: python-fastapi
    source: shipped               # shipped, team, path or git
    ref: python-fastapi           # ecosystem.yaml's `template:` at that time
    version: 1
    commit: null                  # git templates: the commit rendered
    answers: {service_name: loyalty, port: 8080, base_image: python:3.12-slim}

Besides the record, the files provider keeps the pristine render of each new service in
`.ecoctl/pristine/NAME.json` (local state, not committed): the base of an upgrade when the template
folder no longer has the recorded version.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Any

from ecoctl.errors import UsageError
from ecoctl.support.checks import check_line, shown

RECORD_FILE = ".ecoctl-template.yml"
PRISTINE_DIR = Path(".ecoctl") / "pristine"
_HEADER = "# Written by ecoctl when it rendered this service; `ecoctl upgrade` reads it. Commit it.\n"
_KEYS = ("template", "source", "ref", "version", "commit", "answers")


@dataclass(frozen=True)
class TemplateRecord:
    template: str
    source: str
    ref: str
    version: int
    commit: str | None = None
    answers: dict[str, Any] = field(default_factory=dict)

    def dump(self) -> bytes:
        from ruamel.yaml import YAML

        yaml = YAML()  # round-trip dumper: keys stay in this order
        yaml.default_flow_style = False
        yaml.width = 4096  # a long git URL stays on its line
        out = io.StringIO()
        data = asdict(self)
        yaml.dump({key: data[key] for key in _KEYS}, out)
        return (_HEADER + out.getvalue()).encode()

    @classmethod
    def parse(cls, text: str, where: str) -> "TemplateRecord":
        from ecoctl.support.yaml import fast_load

        try:  # the C parser: a plan reads every service's record (twice: files and compose)
            data = fast_load(where, text)
        except UsageError as exc:
            raise UsageError(f"{exc}: fix it, or delete it and run `ecoctl upgrade SERVICE --adopt-from VERSION`") from None
        if not isinstance(data, dict) or not isinstance(data.get("template"), str) \
                or not isinstance(data.get("version"), int) or not isinstance(data.get("answers", {}), dict):
            raise UsageError(f"{where}: expected template, source, ref, version, commit, answers; fix it, "
                             "or delete it and run `ecoctl upgrade SERVICE --adopt-from VERSION`")
        answers = dict(data.get("answers") or {})
        commit = data.get("commit")
        if commit is not None and not (isinstance(commit, str) and len(commit) in (40, 64)
                                       and all(c in "0123456789abcdef" for c in commit)):
            raise UsageError(f"{where}: commit {shown(commit)} is not a full git commit id: fix it, or delete "
                             "it and run `ecoctl upgrade SERVICE --adopt-from VERSION`")
        try:
            check_line(data.get("ref"), "ref", 2000)
            check_line(data.get("source"), "source", 100)
            for key, value in answers.items():
                _check_answer(key, value)
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}: fix it, or delete it and run `ecoctl upgrade SERVICE "
                             "--adopt-from VERSION`") from None
        return cls(template=data["template"], source=str(data.get("source", "shipped")),
                   ref=str(data.get("ref") or data["template"]), version=data["version"],
                   commit=commit, answers=answers)


def _check_answer(key: Any, value: Any) -> None:
    """An answer as its use needs it: a variable name; one line of text or a number (it goes into
    a line of a file, e.g. a Dockerfile's `ARG`); an image reference for an `*_image` answer."""
    from ecoctl.support.checks import check_image

    if not isinstance(key, str) or not key.isidentifier():
        raise ValueError(f"answer name {shown(key)} is not a variable name")
    check_line(value, f"answer {key}")
    if key.endswith("_image") and value is not None:
        check_image(value)


def record_for(source, answers: dict[str, Any]) -> TemplateRecord:
    """The record of a service rendered now from `source` (a template_sources.Source)."""
    return TemplateRecord(template=source.template.name, source=source.kind, ref=source.ref,
                          version=source.template.version, commit=source.commit, answers=dict(answers))


def read_record(folder: Path) -> TemplateRecord | None:
    """FOLDER's record; parsed once per process while the file stays the same (a plan reads each
    service's record twice: files and compose). Treat its `answers` as read-only."""
    path = Path(folder) / RECORD_FILE
    try:
        info = path.stat()
    except OSError:
        return None
    if not S_ISREG(info.st_mode):
        return None
    key = (str(path), info.st_ino, info.st_mtime_ns, info.st_size)
    if key not in _READ:
        _READ[key] = TemplateRecord.parse(path.read_text(encoding="utf-8"), str(path))
    return _READ[key]


_READ: dict[tuple[str, int, int, int], TemplateRecord] = {}


def is_behind(record: TemplateRecord, source) -> bool:
    """Whether the service's template (a template_sources.Source) has moved on since it was rendered."""
    if source.kind == "git" or record.source == "git":
        return record.commit != source.commit
    return record.version < source.template.version


def unrecorded_notice(services: list[str]) -> list[str]:
    """What `plan` says about services rendered before ecoctl recorded templates (one line at most)."""
    if not services:
        return []
    if len(services) == 1:
        return [f"services/{services[0]}/ has no {RECORD_FILE}: `ecoctl upgrade {services[0]} --adopt-from "
                "VERSION` records the template version it was made from"]
    listed = ", ".join(services[:5]) + (f" and {len(services) - 5} more" if len(services) > 5 else "")
    return [f"{len(services)} services have no {RECORD_FILE} ({listed}): `ecoctl upgrade NAME --adopt-from "
            "VERSION` records the template version each was made from"]


def upgrade_notice(service: str, record: TemplateRecord, source) -> str:
    """One line for `ecoctl plan` when SERVICE is behind its template; else ""."""
    if not is_behind(record, source):
        return ""
    new = source.template.version if source.kind != "git" else f"{source.template.version} ({source.ref})"
    return (f"{service} was rendered from {record.template} v{record.version}; the template is at v{new}: "
            f"`ecoctl upgrade {service}` (see `ecoctl upgrade {service} --dry-run`)")


def pristine_path(root: Path, service: str) -> Path:
    """`.ecoctl/pristine/SERVICE.json`: the pristine render, one file (a service's 25 files are one create)."""
    return Path(root) / PRISTINE_DIR / f"{service}.json"


def write_pristine(root: Path, service: str, files: dict[str, bytes]) -> None:
    """Keep `files` (paths relative to the service folder, its record among them) as SERVICE's pristine render."""
    import base64
    import json

    from ecoctl.support.atomic import write_atomic

    shutil.rmtree(Path(root) / PRISTINE_DIR / service, ignore_errors=True)  # the folder older versions kept
    document = {"files": {rel: base64.b64encode(content).decode("ascii") for rel, content in sorted(files.items())}}
    write_atomic(pristine_path(root, service), json.dumps(document), mode=0o600, durable=False)


def read_pristine(root: Path, service: str, record: TemplateRecord) -> dict[str, bytes] | None:
    """The pristine render of SERVICE, if one was saved for exactly `record`'s version and answers."""
    files = _pristine_files(root, service)
    if files is None or RECORD_FILE not in files:
        return None
    saved = TemplateRecord.parse(files[RECORD_FILE].decode("utf-8"), str(pristine_path(root, service)))
    if (saved.template, saved.version, saved.answers) != (record.template, record.version, record.answers):
        return None
    return {rel: content for rel, content in sorted(files.items()) if rel != RECORD_FILE}


def _pristine_files(root: Path, service: str) -> dict[str, bytes] | None:
    import base64
    import binascii
    import json

    path = pristine_path(root, service)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        files = {rel: base64.b64decode(content, validate=True) for rel, content in document["files"].items()}
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, RecursionError):
        return None  # not what ecoctl wrote: as if gone
    else:
        for rel in files:
            if not is_inside(rel):
                raise UsageError(f"{path}: holds the path {shown(rel)}, which is not inside services/{service}/ "
                                 f"(not written by ecoctl): delete {path}")
        return files
    folder = Path(root) / PRISTINE_DIR / service  # as older versions kept it
    if not folder.is_dir():
        return None
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def is_inside(rel: object) -> bool:
    """Whether REL (read from a record or a pristine render) is a relative POSIX path that stays in
    the service's folder: not absolute, no `..`, `.` or empty part, no NUL or backslash."""
    return isinstance(rel, str) and bool(rel) and not rel.startswith("/") and "\0" not in rel \
        and "\\" not in rel and all(part not in ("", ".", "..") for part in rel.split("/"))


def remove_pristine(root: Path, service: str) -> None:
    pristine_path(root, service).unlink(missing_ok=True)
    shutil.rmtree(Path(root) / PRISTINE_DIR / service, ignore_errors=True)
