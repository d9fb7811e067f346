"""The backup folder: one `pg_dump -Fc` archive per service database and run, and its manifest.

    DIR/                          0700 (default: .ecoctl/backups/ in the ecosystem, git-ignored)
      loyalty/                    0700
        loyalty-20261202T031700Z.dump    0600, the archive
        loyalty-20261202T031700Z.json    0600, its manifest: service, database, sha256, bytes,
                                         server and pg_dump versions, time, ecoctl version, tables

A dump is written to a temporary name (`.NAME.XXXXXXXX.tmp`, ecoctl's writer's), fsynced, then
linked to its final name (never over another), and its manifest is written last, atomically: a
backup is complete only when both exist and the archive's checksum is the manifest's. `restore`
checks all of that before it touches a database. No database is talked to here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ecoctl.errors import EcoctlError, UsageError

FORMAT = "ecoctl-backup/1"
STAMP = "%Y%m%dT%H%M%SZ"
CHUNK = 1 << 20
_NAME = re.compile(r"^(?P<service>[a-z0-9-]+)-(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?\.dump$")


@dataclass
class Manifest:
    service: str
    database: str
    ecosystem: str
    file: str
    """The archive's name, in the manifest's folder."""
    sha256: str
    bytes: int
    created: str
    """UTC, ISO 8601 (`2026-12-02T03:17:00Z`)."""
    server_version: str
    pg_dump_version: str
    ecoctl_version: str
    tables: list[str] = field(default_factory=list)
    """schema.table of each table whose data the archive holds."""
    format: str = FORMAT

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        """The manifest at PATH, or one UsageError saying why it is not one ecoctl wrote."""
        from ecoctl.support.atomic import read_text

        try:
            data = json.loads(read_text(path))
        except FileNotFoundError:
            raise UsageError(f"{path}: no such manifest beside the dump: restore a backup made by "
                             "`ecoctl backup` (its .dump and .json files together)") from None
        except ValueError:
            raise UsageError(f"{path}: not a manifest of `ecoctl backup` (not JSON)") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise UsageError(f"{path}: not a manifest of `ecoctl backup` (format is not {FORMAT})")
        try:
            manifest = cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})
        except TypeError as exc:
            raise UsageError(f"{path}: a manifest with missing fields ({exc}): not one ecoctl wrote") from None
        if not isinstance(manifest.bytes, int) or not re.fullmatch(r"[0-9a-f]{64}", str(manifest.sha256)):
            raise UsageError(f"{path}: a manifest without a valid size and sha256: not one ecoctl wrote")
        return manifest


def now_stamp() -> tuple[str, str]:
    """(file stamp, ISO time) of this moment, UTC."""
    moment = datetime.now(timezone.utc).replace(microsecond=0)
    return moment.strftime(STAMP), moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def private_folder(path: Path) -> Path:
    """PATH made (with parents) and kept 0700: dumps hold every row of a service."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.is_symlink() or not path.is_dir():
            raise FileExistsError
        os.chmod(path, 0o700)
    except FileExistsError:
        raise UsageError(f"{path}: not a folder: give --to a folder for the backups") from None
    except OSError as exc:
        raise EcoctlError(f"{path}: cannot make a private folder for the backups there ({exc.strerror}): "
                          "give --to a folder you may write") from None
    return path


def manifest_path(dump: Path) -> Path:
    return dump.with_suffix(".json")


def dump_of(path: Path) -> Path:
    """The archive a user named, by itself or by its manifest."""
    return path.with_suffix(".dump") if path.suffix == ".json" else path


def publish(tmp: Path, folder: Path, service: str, stamp: str) -> Path:
    """Give the finished temporary archive TMP its final name in FOLDER (never replacing one), after
    every archive of the same second still there: a name retention freed is never reused, or the
    newest backup would sort as the oldest and be pruned at once."""
    taken = [int(match["n"] or 1) for path in folder.glob(f"{service}-{stamp}*.dump")
             if (match := _NAME.match(path.name)) and match["service"] == service and match["stamp"] == stamp]
    first = max(taken, default=0) + 1
    for n in range(first, first + 1000):
        final = folder / (f"{service}-{stamp}.dump" if n == 1 else f"{service}-{stamp}-{n}.dump")
        try:
            os.link(tmp, final)
        except FileExistsError:
            continue
        os.unlink(tmp)
        return final
    raise EcoctlError(f"{folder}: too many backups of {service} at {stamp}: wait a second and retry")


def write_manifest(manifest: Manifest, dump: Path) -> Path:
    from ecoctl.support.atomic import write_atomic

    path = manifest_path(dump)
    write_atomic(path, json.dumps(manifest.to_json(), indent=2) + "\n", mode=0o600)
    return path


def sha256_of(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def verify(dump: Path, service: str, database: str) -> Manifest:
    """DUMP's manifest, once it says DUMP is SERVICE's (of DATABASE) and the file is whole; else one
    line: a UsageError for a backup of something else, an EcoctlError for a damaged file."""
    if not dump.is_file():
        raise UsageError(f"{dump}: no such backup file: `ecoctl backup` writes them to "
                         f".ecoctl/backups/{service}/ unless --to names another folder")
    manifest = Manifest.load(manifest_path(dump))
    if manifest.service != service or manifest.database != database:
        raise UsageError(f"{dump} is a backup of {manifest.service} ({manifest.database}), not of "
                         f"{service} ({database}): nothing was restored; pick one of {service}'s backups")
    if manifest.file != dump.name:
        raise UsageError(f"{manifest_path(dump)} describes {manifest.file}, not {dump.name}: nothing was "
                         "restored; keep each dump beside its own manifest")
    digest, size = sha256_of(dump)
    if size != manifest.bytes or digest != manifest.sha256:
        what = (f"{size} bytes instead of {manifest.bytes} (truncated?)" if size != manifest.bytes
                else "its sha256 differs from the manifest's")
        raise EcoctlError(f"{dump} is damaged: {what}; nothing was restored: use another backup")
    return manifest


@dataclass(frozen=True)
class Backup:
    dump: Path
    manifest: Manifest


def complete_backups(folder: Path, service: str) -> list[Backup]:
    """SERVICE's complete backups in FOLDER (an archive with its manifest), newest first. The
    checksum is not read here (retention and listings); `verify` does before a restore."""
    found = []
    for path in folder.glob(f"{service}-*.dump") if folder.is_dir() else ():
        match = _NAME.match(path.name)
        if not match or match["service"] != service:
            continue
        try:
            manifest = Manifest.load(manifest_path(path))
        except UsageError:
            continue  # a dump whose manifest was never written (a killed run) is no backup
        if manifest.service == service and manifest.file == path.name:
            found.append((manifest.created, int(match["n"] or 1), Backup(path, manifest)))
    return [backup for *_, backup in sorted(found, key=lambda entry: entry[:2], reverse=True)]


def prune(folder: Path, service: str, keep: int) -> list[Path]:
    """Delete SERVICE's complete backups beyond the newest KEEP; the archives deleted. The manifest
    goes first, so a deletion cut short never leaves something that looks complete."""
    removed = []
    for backup in complete_backups(folder, service)[keep:]:
        manifest_path(backup.dump).unlink(missing_ok=True)
        backup.dump.unlink(missing_ok=True)
        removed.append(backup.dump)
    return removed
