"""`ecoctl restore SERVICE FILE [--to-db NAME]`: a backup back into a service's database, never
losing the live one.

1. Before any database is touched: FILE's manifest must name SERVICE and its database, the file
   must have the manifest's size and sha256, and its table of contents must be that database's.
2. The archive is restored into a new database (`<db>_restoring`, made like the live one: owner,
   encoding, who may connect), with `pg_restore --exit-on-error`, then checked (every table whose
   data the archive holds exists). A failure drops that database; the live one was never written.
3. The swap: the live database renamed to `<db>_before_restore` and the restored one to its name,
   in one transaction (its sessions ended right before; see `postgres_swap.swap`); the service is
   restarted through the runtime (`restart`'s path). Once it is healthy (or the stack does not
   run) the old database is dropped, unless `--keep-old`; otherwise it is kept and named.

`--to-db NAME` stops after step 2: the backup sits beside the live database, which is left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ecoctl.backups import dump_of, verify
from ecoctl.errors import EcoctlError, UsageError

if TYPE_CHECKING:
    from ecoctl.workspace import Workspace

RESTORING = "ecoctl: restore in progress"
"""The comment on the database being restored into: a leftover of a killed restore carries it."""
DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass
class Restored:
    service: str
    database: str
    into: str
    tables: int
    swapped: bool = False
    kept: str | None = None
    """The database before the restore, when it was kept (`--keep-old`, or the service not healthy)."""
    health: dict[str, str] = field(default_factory=dict)
    """What uses the database, restarted: name -> health (empty when the stack does not run)."""

    @property
    def failed(self) -> dict[str, str]:
        return {name: state for name, state in self.health.items() if state not in ("healthy", "restarted")}

    def to_json(self) -> dict:
        return {"service": self.service, "database": self.database, "into": self.into, "tables": self.tables,
                "swapped": self.swapped, "kept": self.kept, "health": self.health}


def restore(workspace: "Workspace", service: str, file: Path, to_db: str | None = None, keep_old: bool = False,
            progress: Callable[[str], None] | None = None, grants: bool = True) -> Restored:
    from ecoctl.clients.postgres import Admin
    from ecoctl.commands.backup import databases_of
    from ecoctl.runtimes import get_runtime

    target = databases_of(workspace, [service])[service]
    dump = dump_of(Path(file)).expanduser().resolve()
    if to_db is not None and (not DATABASE_NAME.fullmatch(to_db) or to_db == target.database):
        raise UsageError(f"--to-db {to_db!r}: give a new database name (lowercase letters, digits, _; at most "
                         f"63), not {target.database} itself")
    manifest = verify(dump, service, target.database)
    say = progress or (lambda message: None)
    admin = Admin.connect(workspace.postgres)
    runtime = get_runtime(workspace, progress)
    try:
        tool = runtime.postgres_tool(admin.conn.info.server_version // 10000)
        if to_db is None:
            _aside_free(admin, target.database)
        restored = _restore_beside(admin, tool, dump, target, to_db, say, grants)
        result = Restored(service, target.database, restored, len(manifest.tables))
        if to_db is not None:
            return result
        return _swap_in(workspace, admin, runtime, target, restored, result, keep_old, say)
    finally:
        runtime.close()
        admin.close()


def _aside(live: str) -> str:
    return f"{live}_before_restore"


def _aside_free(admin, live: str) -> None:
    """Refuse, before restoring anything, when the name the live database would take is taken."""
    from ecoctl.clients.postgres_swap import exists

    with admin.errors(f"looking up {_aside(live)}"):
        taken = exists(admin.conn, _aside(live))
    if taken:
        raise EcoctlError(f"database {_aside(live)} exists (kept by an earlier restore): drop or rename it, "
                          f"then restore again; {_unchanged(live, True)}")


def _unchanged(database: str, exists: bool) -> str:
    return (f"the live database {database} is unchanged" if exists
            else f"{database} did not exist and still does not")


def _restore_beside(admin, tool, dump: Path, target, to_db: str | None, say, grants: bool) -> str:
    """The archive restored and checked in a new database; its name. On failure that database is
    dropped and the error says the live one is unchanged."""
    import psycopg

    from ecoctl.clients import postgres_swap as swap
    from ecoctl.clients.postgres_dump import contents, restore

    conn, live = admin.conn, target.database
    with admin.errors(f"looking up {live}"):
        had_live = swap.exists(conn, live)
    toc = contents(tool, dump)
    if toc.database != live:
        raise UsageError(f"{dump} holds a dump of {toc.database or 'no database'}, not {live}: nothing was restored")
    new = to_db or f"{live}_restoring"
    with admin.errors(f"making {new}"):
        if swap.exists(conn, new):
            comment = conn.execute("select shobj_description(oid, 'pg_database') from pg_database "
                                   "where datname = %s", (new,)).fetchone()[0]
            if to_db is not None or comment != RESTORING:
                raise UsageError(f"database {new} exists already: name another with --to-db, or drop it first")
            swap.drop(conn, new)  # what a killed restore left; it may have been killed mid-swap:
            if had_live and not swap.connections_allowed(conn, live):
                swap.allow_connections(conn, live, True)
        swap.create_like(conn, new, target.role, live if had_live else None,
                         RESTORING if to_db is None else f"ecoctl: a restore of {live}")
    try:
        say(f"restoring {dump.name} into {new} with {tool.where}")
        restore(tool, dump, new, grants)
        with admin.database(new) as check:
            missing = swap.missing_tables(check, toc.tables)
        if missing:
            raise EcoctlError(f"the restored {new} lacks {len(missing)} of the archive's tables "
                              f"({', '.join(missing[:3])})")
    except BaseException as exc:  # Ctrl-C too: the half-restored copy goes
        with admin.errors(f"dropping {new} after a failed restore"):
            swap.drop(conn, new)
        if not isinstance(exc, (EcoctlError, psycopg.Error)):
            raise
        reason = str(exc) if isinstance(exc, EcoctlError) else str(exc).splitlines()[0]
        raise EcoctlError(f"restore of {dump.name} failed: {reason}; {_unchanged(live, had_live)} "
                          f"and {new} was removed") from None
    return new


def _swap_in(workspace, admin, runtime, target, restored: str, result: Restored, keep_old: bool, say) -> Restored:
    import psycopg

    from ecoctl.clients import postgres_swap as swap
    from ecoctl.clients.postgres import MANAGED
    from ecoctl.commands.secrets import consumers

    conn, live = admin.conn, target.database
    aside = _aside(live)
    with admin.errors(f"looking up {live}"):
        had_live = swap.exists(conn, live)
    say(f"swapping {restored} in as {live}")
    try:
        swap.swap(conn, live, restored, aside, MANAGED)
    except psycopg.Error as exc:
        with admin.errors(f"dropping {restored} after a failed swap"):
            swap.drop(conn, restored)
        raise EcoctlError(f"could not swap the restored database in ({str(exc).splitlines()[0]}): "
                          f"{_unchanged(live, had_live)}; stop what holds it open and restore again") from None
    result.swapped = True
    if runtime.is_running():
        for name in consumers(workspace, runtime, result.service):
            say(f"restarting {name}")
            try:
                result.health[name] = runtime.restart_service(name)
            except EcoctlError as exc:
                result.health[name] = f"not restarted: {exc}"
    if had_live:
        if keep_old or result.failed:
            result.kept = aside
        else:
            with admin.errors(f"dropping {aside}, the database before the restore"):
                swap.drop(conn, aside)
    return result
