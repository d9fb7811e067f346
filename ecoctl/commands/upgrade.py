"""`ecoctl upgrade`: bring rendered services up to their template's current (or given) version.

Per file, a three-way merge by `git merge-file --diff3`: base = the recorded version rendered with the
recorded answers, theirs = the new version's render, ours = the file as the team has it. Changes on
different lines merge; the same lines changed on both sides leave diff3 conflict markers. A file the
template added is added; one it deleted is deleted only if unchanged since rendering. The record
(`services/NAME/.ecoctl-template.yml`) then names the new version, conflicts or not: what is left is
resolving the markers, and a second upgrade has nothing to do. `--dry-run` computes it all, prints a
unified diff and writes nothing.

Without SERVICE names, every service with a folder is considered, the core ones too; a service with
no record (rendered before ecoctl recorded templates, like the portfolio service of an ecosystem made
before it was a template) is skipped with a line saying how to adopt it; named, it is an error.
"""

from __future__ import annotations

import difflib
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ecoctl.errors import EcoctlError, UsageError
from ecoctl.template_record import (RECORD_FILE, TemplateRecord, read_pristine, read_record, record_for,
                                    write_pristine)
from ecoctl.template_sources import Source, at_version, is_git, recorded_template, resolve, versions, with_rev

MARKER = b"<<<<<<< yours"
SYMBOL = {"update": "~", "merge": "M", "conflict": "!", "add": "+", "delete": "-", "kept": "?"}


@dataclass
class FileChange:
    path: str
    """Relative to the service folder."""
    action: str
    """update (the template's change, file untouched), merge (clean three-way merge), conflict,
    add, delete, kept (the template deleted it, but it was changed: left alone)."""
    content: bytes | None = None
    mode: int = 0o644
    diff: str = ""

    def to_json(self, with_diff: bool = False) -> dict:
        return {"path": self.path, "action": self.action, **({"diff": self.diff} if with_diff else {})}


@dataclass
class ServiceUpgrade:
    service: str
    template: str
    old: str
    new: str
    changes: list[FileChange] = field(default_factory=list)
    record: TemplateRecord | None = None
    """The record to write (None: already up to date)."""
    new_ref: str | None = None
    """ecosystem.yaml's new `template:` (a git template moved to another tag)."""
    unresolved: list[str] = field(default_factory=list)
    """Files still holding conflict markers from an earlier upgrade."""
    theirs: dict[str, bytes] = field(default_factory=dict, repr=False)
    """The new version's render: the next pristine copy."""

    @property
    def conflicts(self) -> list[str]:
        return [c.path for c in self.changes if c.action == "conflict"] + self.unresolved

    @property
    def status(self) -> str:
        if self.conflicts:
            return "conflicts"
        return "up-to-date" if self.record is None else "upgraded"

    def to_json(self, with_diff: bool = False) -> dict:
        return {"service": self.service, "template": self.template, "from": self.old, "to": self.new,
                "status": self.status, "files": [c.to_json(with_diff) for c in self.changes],
                "conflicts": self.conflicts}


@dataclass
class UpgradeResult:
    services: list[ServiceUpgrade]
    dry_run: bool
    unrecorded: list[str] = field(default_factory=list)
    """Services skipped for want of a record (only when no SERVICE was named)."""

    @property
    def conflicts(self) -> list[str]:
        return [f"services/{s.service}/{path}" for s in self.services for path in s.conflicts]

    def to_json(self) -> dict:
        return {"dry_run": self.dry_run, "services": [s.to_json(self.dry_run) for s in self.services],
                "conflicts": self.conflicts, "unrecorded": self.unrecorded}

    def text(self) -> list[str]:
        lines = [] if self.services or self.unrecorded else [
            "No services rendered from a template: nothing to upgrade."]
        lines += [f"{name}: skipped, no {RECORD_FILE}: `ecoctl upgrade {name} --adopt-from VERSION` records "
                  "the template version it was made from" for name in self.unrecorded]
        for up in self.services:
            if up.record is None and not up.changes:
                lines.append(f"{up.service}: up to date ({up.template} {up.new}), nothing to do")
                lines += [f"  ! {path}: still has conflict markers" for path in up.unresolved]
                continue
            verb = "would upgrade" if self.dry_run else "upgraded"
            lines.append(f"{up.service}: {verb} {up.template} {up.old} -> {up.new}")
            lines += [f"  {SYMBOL[c.action]} {c.action:<8} {c.path}" for c in up.changes]
            if not up.changes:
                lines.append("  no file changes; only the record moves to " + up.new)
        if self.dry_run:
            lines += [c.diff for up in self.services for c in up.changes if c.diff]
        return lines


def no_record_message(name: str, source: Source) -> str:
    hint = "a tag or commit" if source.kind == "git" else f"one of {', '.join(map(str, versions(source)))}"
    return (f"services/{name}/ has no {RECORD_FILE} (rendered before ecoctl recorded templates): run "
            f"`ecoctl upgrade {name} --adopt-from VERSION` with the {source.template.name} version it was "
            f"made from ({hint}); `--dry-run` first shows what that would change")


def upgrade(workspace, names: list[str] | None = None, to: str | None = None, dry_run: bool = False,
            adopt_from: str | None = None) -> UpgradeResult:
    services = workspace.ecosystem.services
    folder = workspace.root / "services"
    selected = list(names or [name for name in services if (folder / name).is_dir()])
    for name in selected:
        if name not in services:
            raise UsageError(f"no service {name!r} in ecosystem.yaml (services: {', '.join(services) or 'none'})")
        if not (folder / name).is_dir():
            raise UsageError(f"services/{name}/ does not exist: `ecoctl apply` renders it")
    # --adopt-from with no SERVICE adopts every service without a record and upgrades the others;
    # without it, those are skipped (and said)
    unrecorded = [] if names or adopt_from else [
        name for name in selected if not (folder / name / RECORD_FILE).is_file()]
    planned = [plan_service(workspace, name, to, adopt_from, adopt_only_unrecorded=not names)
               for name in selected if name not in unrecorded]
    if not dry_run:
        for up in planned:
            write(workspace, up)
    return UpgradeResult(planned, dry_run, unrecorded)


def plan_service(workspace, name: str, to: str | None, adopt_from: str | None,
                 adopt_only_unrecorded: bool = False) -> ServiceUpgrade:
    from ecoctl.service_templates import service_answers

    spec = workspace.ecosystem.services[name]
    folder = workspace.root / "services" / name
    source = resolve(spec.template, workspace.template_dirs(), fetch=is_git(spec.template))
    record = read_record(folder)
    if record is None:
        if adopt_from is None:
            raise UsageError(no_record_message(name, source))
        record = _adopted(workspace, source, adopt_from, service_answers(workspace.ecosystem, name))
    elif adopt_from is not None and not adopt_only_unrecorded:
        raise UsageError(f"services/{name}/ already has {RECORD_FILE} (v{record.version}): drop --adopt-from")
    target, new_ref = _target(workspace, name, source, record, to)
    answers = {**record.answers, **service_answers(workspace.ecosystem, name)}
    new_record = record_for(target, answers)
    up = ServiceUpgrade(name, target.template.name, _label(record.version, record.commit),
                        _label(target.template.version, target.commit), new_ref=new_ref)
    if (new_record.version, new_record.commit, new_record.answers) == (record.version, record.commit, record.answers) \
            and (folder / RECORD_FILE).is_file():
        theirs = _render(target.template, answers)
        up.unresolved = [rel for rel in theirs if (folder / rel).is_file() and MARKER in (folder / rel).read_bytes()]
        return up
    base = _base(workspace, name, record, source)
    theirs = _render(target.template, answers)
    labels = ("yours", f"template {up.old}", f"template {up.new}")
    for rel in sorted(set(base) | set(theirs)):
        change = _file_change(folder, rel, base.get(rel), theirs.get(rel), labels)
        if change is not None:
            up.changes.append(change)
    up.record, up.theirs = new_record, theirs
    return up


def _label(version: int, commit: str | None) -> str:
    return f"v{version}" + (f" ({commit[:12]})" if commit else "")


def _adopted(workspace, source: Source, adopt_from: str, answers: dict) -> TemplateRecord:
    """The record a service would have if it had been rendered from `adopt_from`."""
    if source.kind == "git":
        old = resolve(with_rev(source.ref, adopt_from), fetch=True)
        return record_for(old, answers)
    if not adopt_from.isdigit() or at_version(source, int(adopt_from)) is None:
        raise UsageError(f"--adopt-from {adopt_from}: {source.template.name} has versions "
                         f"{', '.join(map(str, versions(source)))}")
    return TemplateRecord(source.template.name, source.kind, source.ref, int(adopt_from), None, dict(answers))


def _target(workspace, name: str, source: Source, record: TemplateRecord, to: str | None) -> tuple[Source, str | None]:
    if source.kind == "git":
        if to is None:
            return source, None
        target = resolve(with_rev(source.ref, to), fetch=True)
        return target, target.ref
    if to is None:
        version = source.template.version
    elif not to.isdigit():
        raise UsageError(f"--to {to}: {source.template.name} versions are numbers "
                         f"({', '.join(map(str, versions(source)))})")
    else:
        version = int(to)
    if version < record.version:
        raise UsageError(f"--to {version}: services/{name}/ is already at v{record.version}; upgrades go forward")
    template = at_version(source, version)
    if template is None:
        raise UsageError(f"--to {version}: {source.template.name} has versions "
                         f"{', '.join(map(str, versions(source)))}")
    return Source(template, source.kind, source.ref), None


def _base(workspace, name: str, record: TemplateRecord, source: Source) -> dict[str, bytes]:
    """What the recorded version renders with the recorded answers."""
    if record.source == "git" and not record.commit:
        raise UsageError(f"services/{name}/{RECORD_FILE} names a git template without a commit: "
                         "fix the record, or delete it and adopt with --adopt-from")
    template = recorded_template(record, source)
    if template is not None:
        return _render(template, record.answers)
    pristine = read_pristine(workspace.root, name, record)
    if pristine is not None:
        return pristine
    raise UsageError(f"cannot render {record.template} v{record.version}, the base of {name}'s upgrade: "
                     f"the template has no versions/{record.version}/ and .ecoctl/pristine/{name}.json is gone; "
                     f"restore versions/{record.version}/ in the template (from its history)")


def _render(template, answers: dict) -> dict[str, bytes]:
    from ecoctl.service_templates import render_service_files

    return render_service_files(template, answers)


def _file_change(folder: Path, rel: str, base: bytes | None, theirs: bytes | None,
                 labels: tuple[str, str, str]) -> FileChange | None:
    path = folder / rel
    ours = path.read_bytes() if path.is_file() else None
    if theirs is None:  # the template deleted it
        if ours is None:
            return None
        if ours == base:
            return _with_diff(FileChange(rel, "delete"), folder, ours, b"")
        return FileChange(rel, "kept")
    if ours is None:
        # deleted by the team: kept deleted unless the file is new in this version
        return _with_diff(FileChange(rel, "add", theirs), folder, b"", theirs) if base is None else None
    if ours == theirs or base == theirs:
        return None
    mode = path.stat().st_mode & 0o777
    if ours == base:
        return _with_diff(FileChange(rel, "update", theirs, mode), folder, ours, theirs)
    merged, conflicted = merge3(ours, base or b"", theirs, labels)
    if conflicted and merged == ours:  # binary: not merged, left as it is
        return FileChange(rel, "conflict", None, mode, f"Binary file services/{folder.name}/{rel} changed "
                          "here and in the template: not merged; take the template's version by hand")
    action = "conflict" if conflicted else "merge"
    if merged == ours and not conflicted:
        return None
    return _with_diff(FileChange(rel, action, merged, mode), folder, ours, merged)


def _with_diff(change: FileChange, folder: Path, old: bytes, new: bytes | None) -> FileChange:
    name = f"services/{folder.name}/{change.path}"
    try:
        a, b = old.decode("utf-8"), (new or b"").decode("utf-8")
    except UnicodeDecodeError:
        change.diff = f"Binary file {name} differs"
        return change
    change.diff = "".join(difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                               "/dev/null" if change.action == "add" else f"a/{name}",
                                               "/dev/null" if change.action == "delete" else f"b/{name}"))
    return change


def merge3(ours: bytes, base: bytes, theirs: bytes, labels: tuple[str, str, str]) -> tuple[bytes, bool]:
    """(merged content, whether it holds conflicts) by `git merge-file --diff3`. A binary file is
    never merged: it comes back unchanged, as a conflict."""
    if b"\0" in ours + base + theirs:
        return ours, True
    with tempfile.TemporaryDirectory(prefix="ecoctl-merge-") as tmp:
        paths = []
        for part, content in zip(("ours", "base", "theirs"), (ours, base, theirs)):
            paths.append(Path(tmp) / part)
            paths[-1].write_bytes(content)
        args = ["git", "merge-file", "-p", "--diff3"]
        for label in labels:
            args += ["-L", label]
        try:
            result = subprocess.run([*args, *map(str, paths)], capture_output=True, timeout=120)
        except FileNotFoundError:
            raise EcoctlError("git is not installed: `ecoctl upgrade` merges with `git merge-file`; install git") from None
    if result.returncode >= 128 or result.returncode < 0:
        raise EcoctlError(f"git merge-file failed: {result.stderr.decode(errors='replace').strip()[:200]}")
    return result.stdout, result.returncode > 0


def write(workspace, up: ServiceUpgrade) -> None:
    """Apply one service's upgrade: files, then its record and pristine render, then ecosystem.yaml."""
    from ecoctl.support.atomic import write_atomic

    if up.record is None:
        return
    folder = workspace.root / "services" / up.service
    for change in up.changes:
        path = folder / change.path
        if change.action == "delete":
            path.unlink()
            _prune(path.parent, folder)
        elif change.content is not None and change.action != "kept":
            write_atomic(path, change.content, mode=change.mode)
    write_atomic(folder / RECORD_FILE, up.record.dump(), mode=0o644)
    write_pristine(workspace.root, up.service, {**up.theirs, RECORD_FILE: up.record.dump()})
    if up.new_ref:
        ref = up.new_ref
        workspace.ecosystem_file.update(lambda doc: doc["services"][up.service].__setitem__("template", ref))


def _prune(directory: Path, stop: Path) -> None:
    while directory != stop and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent


def template_status(workspace) -> list[dict]:
    """Per rendered service: its template, recorded version, the template's version, and whether it is behind."""
    from ecoctl.template_record import is_behind

    rows = []
    for name, spec in workspace.ecosystem.services.items():
        folder = workspace.root / "services" / name
        if not folder.is_dir():
            continue
        source = resolve(spec.template, workspace.template_dirs())
        record = read_record(folder)
        rows.append({"service": name, "template": source.template.name,
                     "version": record.version if record else None, "latest": source.template.version,
                     "behind": None if record is None else is_behind(record, source)})
    return rows
