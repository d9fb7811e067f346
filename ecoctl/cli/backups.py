"""CLI: a service database's backups: backup, restore."""

from __future__ import annotations

from typing import Optional

import typer

from ecoctl.cli.app import app
from ecoctl.cli.common import JSON_OPTION, complete_service, stage_display, workspace_of


def _tables(count: int) -> str:
    return f"{count} table" + ("" if count == 1 else "s")


def backup(ctx: typer.Context,
           services: Optional[list[str]] = typer.Argument(None, metavar="SERVICE", help="Services whose databases to dump (default: every one).", autocompletion=complete_service),
           to: Optional[str] = typer.Option(None, "--to", metavar="DIR", help="The backup folder (default: .ecoctl/backups/); one 0700 folder per service inside."),
           keep: Optional[int] = typer.Option(None, "--keep", metavar="N", help="Keep only the newest N complete backups of each service backed up."),
           schedule: bool = typer.Option(False, "--schedule", help="Print a nightly crontab line and systemd timer for this backup, and back up nothing."),
           json_output: bool = JSON_OPTION):
    """Dump each service's database (pg_dump -Fc) with a manifest (sha256, versions, time); exit 1 if any failed."""
    from pathlib import Path

    from ecoctl import ui
    from ecoctl.commands.backup import backup as run_backup
    from ecoctl.commands.backup import schedule as schedule_of
    from ecoctl.errors import EcoctlError

    workspace = workspace_of(ctx)
    folder = Path(to) if to is not None else None
    lines = schedule_of(workspace, folder, keep)
    out = ui.console()
    if schedule:
        out.print(f"crontab -e, then add:\n{lines['cron']}\n\nor systemd:\n{lines['systemd_service']}\n"
                  f"{lines['systemd_timer']}", markup=False)
        return
    with stage_display(json_output) as display:
        results = run_backup(workspace, services or [], folder, keep, display.progress if display else None)
    failed = [result for result in results if result.error]
    if json_output:
        ui.print_json({"ok": not failed, "backups": [result.to_json() for result in results], "cron": lines["cron"]})
    else:
        for result in results:
            if result.error:
                out.print(f"! {result.service}: {result.error}", markup=False)
                continue
            out.print(f"+ {result.service}: {result.dump} ({result.manifest.bytes} bytes, "
                      f"{_tables(len(result.manifest.tables))}, sha256 {result.manifest.sha256[:12]}...)", markup=False)
            for path in result.pruned:
                out.print(f"- {result.service}: {path} (beyond --keep {keep})", markup=False)
        out.print(f"Nightly, with crontab -e (or `ecoctl backup --schedule` for a systemd timer):\n{lines['cron']}",
                  markup=False)
    if failed:
        names = ", ".join(result.service for result in failed)
        raise EcoctlError(f"the backup of {names} failed (see above); the others are complete")


def restore(ctx: typer.Context,
            service: str = typer.Argument(..., help="The service whose database to restore (or `authentik`).", autocompletion=complete_service),
            file: str = typer.Argument(..., help="A backup of it: its .dump (its .json manifest beside it)."),
            to_db: Optional[str] = typer.Option(None, "--to-db", metavar="NAME", help="Restore into a new database NAME beside the live one, which is left alone."),
            keep_old: bool = typer.Option(False, "--keep-old", help="Keep the database as it was before as <db>_before_restore."),
            no_grants: bool = typer.Option(False, "--no-grants", help="Leave out the backup's GRANTs (to roles removed since); `ecoctl apply` grants ecoctl's again."),
            json_output: bool = JSON_OPTION):
    """Restore SERVICE's database from a backup: checked, restored into a new database, then swapped in and the service restarted."""
    from pathlib import Path

    from ecoctl import ui
    from ecoctl.commands.restore import restore as run_restore
    from ecoctl.errors import UnhealthyServices

    workspace = workspace_of(ctx, changes=True)
    with stage_display(json_output) as display:
        result = run_restore(workspace, service, Path(file), to_db, keep_old, display.progress if display else None,
                             grants=not no_grants)
    if json_output:
        ui.print_json(result.to_json())
    else:
        out = ui.console()
        if not result.swapped:
            out.print(f"Restored {file} into {result.into} ({_tables(result.tables)}); {result.database} is "
                      "unchanged.", markup=False)
        else:
            out.print(f"Restored {result.database} from {file} ({_tables(result.tables)}).", markup=False)
            for name, health in result.health.items():
                out.print(f"Restarted {name} ({health}).", markup=False)
            if not result.health:
                out.print("The stack is not running: the service reads it at the next `ecoctl up`.", markup=False)
            if result.kept:
                out.print(f"The database as it was before is kept as {result.kept}.", markup=False)
        if no_grants:
            out.print("Restored without the backup's grants: run `ecoctl apply` to grant its readers theirs.",
                      markup=False)
    if result.failed:
        raise UnhealthyServices(result.failed, {})


app.command()(backup)
app.command()(restore)
