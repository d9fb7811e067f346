"""The command line: parses arguments, calls the core, prints. Nothing else lives here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(name="ecoctl", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  help="Provision and run a microservices ecosystem around the Portfolio Manager service.")
state: dict = {"dir": None}

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object (for CI) instead of text.")


@app.callback()
def _global(directory: Optional[Path] = typer.Option(
        None, "--dir", "-C", help="The ecosystem directory (default: nearest with ecosystem.yaml).")):
    state["dir"] = directory


def _workspace():
    from ecoctl.workspace import Workspace

    return Workspace.open(state["dir"])


@app.command()
def init(directory: Path = typer.Argument(..., help="Where to create the ecosystem."),
         runtime: Optional[str] = typer.Option(None, help="docker or local (default: docker when an engine answers)."),
         force: bool = typer.Option(False, "--force", help="Re-create missing files and secrets of an existing ecosystem; existing secrets are kept."),
         json_output: bool = JSON_OPTION):
    """Create a new ecosystem: ecosystem.yaml, compose.yaml, .env (0600), monitoring/, services/portfolio/."""
    from ecoctl import ui
    from ecoctl.errors import UsageError
    from ecoctl.scaffold import init_ecosystem

    if runtime not in (None, "docker", "local"):
        raise UsageError(f"--runtime must be docker or local, not {runtime!r}")
    result = init_ecosystem(directory, runtime=runtime, force=force)
    if json_output:
        ui.print_json({"root": str(result.root), "runtime": result.runtime, "created": result.created,
                       "secrets_generated": result.secrets_added, "secrets_kept": result.secrets_kept})
        return
    out = ui.console()
    out.print(f"Ecosystem in {result.root} (runtime: {result.runtime})")
    for path in result.created:
        out.print(f"  [green]+[/] {path}")
    if result.secrets_added:
        out.print(f"  [green]+[/] .env: {len(result.secrets_added)} new secret(s), mode 0600")
    if result.secrets_kept:
        out.print(f"  .env: {len(result.secrets_kept)} existing secret(s) kept")
    out.print(f"Next: cd {directory} && ecoctl up")


def _only(values: Optional[list[str]]) -> Optional[set[str]]:
    return set(values) if values else None


@app.command()
def plan(json_output: bool = JSON_OPTION,
         detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode", help="Exit 0 when nothing is to do, 2 when changes (or unreachable systems) are pending, 1 on error."),
         only: Optional[list[str]] = typer.Option(None, "--only", help="Limit to these systems (files, compose, postgres, authentik, prometheus, grafana).")):
    """Show how the real systems differ from ecosystem.yaml."""
    from ecoctl import ui
    from ecoctl.core import make_workspace_plan

    result = make_workspace_plan(_workspace(), only=_only(only))
    if json_output:
        ui.print_json(result.to_json())
    else:
        ui.print_plan(result)
    if detailed_exitcode and not result.empty:
        raise typer.Exit(2)


@app.command()
def apply(yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
          json_output: bool = JSON_OPTION,
          only: Optional[list[str]] = typer.Option(None, "--only", help="Limit to these systems.")):
    """Converge the real systems to ecosystem.yaml."""
    from ecoctl import ui
    from ecoctl.core import apply_workspace, make_workspace_plan

    workspace = _workspace()
    preview = make_workspace_plan(workspace, only=_only(only))
    if not preview.changes:
        if json_output:
            ui.print_json({**preview.to_json(), "applied": []})
        else:
            ui.print_plan(preview)
        return
    if not json_output:
        ui.print_plan(preview)
        if not yes and sys.stdin.isatty() and not typer.confirm("Apply these changes?"):
            raise typer.Exit(1)
    out = ui.console()
    done = apply_workspace(workspace, only=_only(only),
                           on_change=None if json_output else lambda c: out.print("  done " + ui.change_line(c)))
    if json_output:
        ui.print_json({**done.to_json(), "applied": [c.to_json() for c in done.changes]})
    else:
        out.print(f"Applied {len(done.changes)} change(s)."
                  + (f" Pending: {', '.join(done.pending)}." if done.pending else ""))


def main() -> None:
    from ecoctl.errors import EcoctlError

    try:
        app()
    except EcoctlError as exc:
        from ecoctl import ui

        ui.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
