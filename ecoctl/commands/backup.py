"""`ecoctl backup [SERVICE...] [--to DIR] [--keep N]`: one `pg_dump -Fc` per service database.

Each database is its own backup (the seed: "each database has its own backup strategy"): restored
alone, kept alone, and a service's dump holds nothing of another's. The dump tool is the runtime's
(`Runtime.postgres_tool`: the server container's own, or a client of the server's version on this
host); the folder, its manifests and retention are `ecoctl.backups`'.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ecoctl.backups import Manifest, now_stamp, private_folder, prune, publish, write_manifest
from ecoctl.errors import EcoctlError, UsageError

if TYPE_CHECKING:
    from ecoctl.providers.postgres import ServiceDatabase
    from ecoctl.workspace import Workspace

BACKUP_DIR = "backups"
"""Under the ecosystem's state folder (.ecoctl/, git-ignored) unless --to names another."""


def ecoctl_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ecoctl")
    except PackageNotFoundError:
        return "unknown"


def databases_of(workspace: "Workspace", services: list[str]) -> dict[str, "ServiceDatabase"]:
    """SERVICES' databases (every service's, and the stack's Authentik's, when none is named)."""
    from ecoctl.providers.postgres import desired_state

    every = desired_state(workspace).databases
    unknown = [name for name in services if name not in every]
    if unknown:
        raise UsageError(f"no service {unknown[0]!r} with a database in ecosystem.yaml (databases: "
                         f"{', '.join(every) or 'none'}): run `ecoctl list` to see the services")
    return {name: every[name] for name in services} if services else every


def backup_folder(workspace: "Workspace", to: Path | None) -> Path:
    return Path(to).expanduser().resolve() if to is not None else workspace.state_dir / BACKUP_DIR


@dataclass
class Result:
    service: str
    database: str
    dump: Path | None = None
    manifest: Manifest | None = None
    error: str | None = None
    pruned: list[Path] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"service": self.service, "database": self.database, "file": str(self.dump) if self.dump else None,
                "bytes": self.manifest.bytes if self.manifest else None,
                "sha256": self.manifest.sha256 if self.manifest else None, "error": self.error,
                "pruned": [str(path) for path in self.pruned]}


def backup(workspace: "Workspace", services: list[str], to: Path | None = None, keep: int | None = None,
           progress: Callable[[str], None] | None = None) -> list[Result]:
    """Dump each of SERVICES' databases into its own folder of the backup folder; with KEEP, only the
    newest KEEP complete backups of each service that was just backed up are kept. A service that
    fails is reported (its error) and the others go on."""
    from ecoctl.clients.postgres import Admin
    from ecoctl.clients.postgres_dump import tool_version
    from ecoctl.runtimes import get_runtime

    if keep is not None and keep < 1:
        raise UsageError(f"--keep must be 1 or more (the newest N backups of each service), not {keep}")
    targets = databases_of(workspace, services)
    folder = private_folder(backup_folder(workspace, to))
    say = progress or (lambda message: None)
    admin = Admin.connect(workspace.postgres)
    runtime = get_runtime(workspace, progress)
    try:
        with admin.errors("reading the server's version and databases"):
            server = admin.conn.execute("show server_version").fetchone()[0].split()[0]
            present = {row[0] for row in admin.conn.execute("select datname from pg_database")}
        tool = runtime.postgres_tool(admin.conn.info.server_version // 10000)
        dumper = tool_version(tool)
        results = []
        for service, db in targets.items():
            result = Result(service, db.database)
            results.append(result)
            if db.database not in present:
                result.error = f"{db.database} does not exist: run `ecoctl apply` to create it"
                continue
            say(f"dumping {db.database} with {tool.where}")
            try:
                result.dump, result.manifest = _dump_one(workspace, tool, folder, service, db.database,
                                                         server, dumper)
            except EcoctlError as exc:
                result.error = str(exc)
                continue
            if keep is not None:
                result.pruned = prune(folder / service, service, keep)
        return results
    finally:
        runtime.close()
        admin.close()


def _dump_one(workspace: "Workspace", tool, folder: Path, service: str, database: str, server: str,
              dumper: str) -> tuple[Path, Manifest]:
    """One complete backup: the archive under a temporary name, fsynced, checked readable, linked
    to its final name; then its manifest. A failure leaves no file that looks like a backup."""
    from ecoctl.clients.postgres_dump import contents, dump

    own = private_folder(folder / service)
    stamp, created = now_stamp()
    fd, name = tempfile.mkstemp(dir=own, prefix=f".{service}-{stamp}.dump.", suffix=".tmp")
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            digest, size = dump(tool, database, out)
            out.flush()
            os.fsync(out.fileno())
        toc = contents(tool, tmp)
        if toc.database != database:
            raise EcoctlError(f"pg_dump wrote an archive of {toc.database or 'no database'}, not {database}")
        final = publish(tmp, own, service, stamp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    manifest = Manifest(service, database, workspace.ecosystem.name, final.name, digest, size, created, server,
                        dumper, ecoctl_version(), toc.tables)
    try:
        write_manifest(manifest, final)
    except BaseException:
        final.unlink(missing_ok=True)
        raise
    _sync_folder(own)
    return final, manifest


def _sync_folder(folder: Path) -> None:
    """The new names in FOLDER reach the disk (a power cut keeps the backup it reported)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ecoctl_command() -> str:
    """How a scheduler runs this ecoctl: its console script, else this Python with `-m ecoctl`."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "ecoctl" and script.exists():
        return shlex.quote(str(script.resolve()))
    found = shutil.which("ecoctl")
    if found:
        return shlex.quote(found)
    return f"{shlex.quote(sys.executable)} -m ecoctl"


def schedule(workspace: "Workspace", to: Path | None, keep: int | None) -> dict[str, str]:
    """A nightly run of this backup: a crontab line, and a systemd service + timer."""
    args = " backup" + (f" --to {shlex.quote(str(backup_folder(workspace, to)))}" if to is not None else "")
    args += f" --keep {keep if keep is not None else 7}"
    root = shlex.quote(str(workspace.root))
    log = shlex.quote(str(workspace.state_dir / "backup.log"))
    command = ecoctl_command() + args
    unit = f"ecoctl-backup-{workspace.ecosystem.name}"
    return {
        "cron": f"17 3 * * * cd {root} && {command} >>{log} 2>&1",
        "systemd_service": (f"# /etc/systemd/system/{unit}.service\n[Unit]\nDescription=ecoctl backup of "
                            f"{workspace.ecosystem.name}\n\n[Service]\nType=oneshot\nWorkingDirectory="
                            f"{workspace.root}\nExecStart={command}\n"),
        "systemd_timer": (f"# /etc/systemd/system/{unit}.timer (then: systemctl enable --now {unit}.timer)\n"
                          "[Unit]\nDescription=nightly ecoctl backup\n\n[Timer]\nOnCalendar=*-*-* 03:17:00\n"
                          "Persistent=true\nRandomizedDelaySec=10m\n\n[Install]\nWantedBy=timers.target\n"),
    }
