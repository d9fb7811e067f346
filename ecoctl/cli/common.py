"""What every command module of the CLI shares: the options, the workspace, the live display."""

from __future__ import annotations

import typer

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object (for CI) instead of text.")
ONLY_OPTION = typer.Option(None, "--only", metavar="SYSTEMS",
                           help="Limit to these systems, comma-separated or repeated: files, compose, "
                                "postgres, authentik, prometheus, grafana (e.g. --only files,compose).")


def workspace_of(ctx: typer.Context, changes: bool = False):
    """The ecosystem (--dir travels in ctx.obj); `changes=True` for commands that edit it (they
    run one at a time)."""
    from ecoctl.workspace import Workspace

    workspace = Workspace.open(ctx.find_root().obj)
    if changes:
        workspace.lock_for_changes()
    return workspace


def complete_service(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion: the services of the ecosystem in reach (none when there is none)."""
    try:
        from ecoctl.workspace import Workspace

        names = list(Workspace.open(ctx.find_root().params.get("directory")).ecosystem.services)
    except Exception:
        return []
    return [name for name in names if name.startswith(incomplete)]


def stage_display(json_output: bool):
    import contextlib

    from ecoctl import ui

    return contextlib.nullcontext() if json_output else ui.StageDisplay()
