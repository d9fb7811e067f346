"""CLI: the ecosystem as a whole: init, plan, apply, up, down, status, logs, token."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ecoctl.cli.app import app
from ecoctl.cli.common import JSON_OPTION, ONLY_OPTION, stage_display, workspace_of

ADOPT_OPTION = typer.Option(False, "--adopt", help="Take over objects with a managed name this ecosystem did not create (without it: a conflict, and apply refuses).")


def parse_only(values):
    from ecoctl.commands.reconcile import parse_only as parse

    return parse(values)


@app.command()
def init(ctx: typer.Context, directory: Path = typer.Argument(..., help="Where to create the ecosystem."),
         runtime: Optional[str] = typer.Option(None, help="docker, swarm or local (default: docker when an engine answers and Compose v2 is available, else local)."),
         force: bool = typer.Option(False, "--force", help="Re-create missing files and secrets of an existing ecosystem; existing secrets are kept."),
         without: list[str] = typer.Option([], "--without", metavar="NAME", help="Leave out an optional core service (`web`, the portfolio web app)."),
         json_output: bool = JSON_OPTION):
    """Create a new ecosystem: ecosystem.yaml, compose.yaml, .env (0600), monitoring/, services/portfolio/ and services/web/."""
    from ecoctl import ui
    from ecoctl.errors import UsageError
    from ecoctl.commands.init import init_ecosystem

    from ecoctl.runtimes import NAMES

    if runtime is not None and runtime not in NAMES:
        raise UsageError(f"--runtime must be {', '.join(NAMES[:-1])} or {NAMES[-1]}, not {runtime!r}")
    result = init_ecosystem(directory, runtime=runtime, force=force, without=tuple(without))
    if json_output:
        ui.print_json({"root": str(result.root), "runtime": result.runtime, "runtime_reason": result.reason,
                       "created": result.created,
                       "secrets_generated": result.secrets_added, "secrets_kept": result.secrets_kept})
        return
    from rich.markup import escape

    out = ui.console()
    out.print(f"Ecosystem in {escape(str(result.root))}")
    out.print(f"Runtime: {result.runtime}: {result.reason}", markup=False)
    for path in result.created:
        out.print(f"  [green]+[/] {escape(ui.created_line(path))}")
    if result.secrets_added:
        out.print(f"  [green]+[/] .env: {len(result.secrets_added)} new secret(s), mode 0600")
    if result.secrets_kept:
        out.print(f"  .env: {len(result.secrets_kept)} existing secret(s) kept")
    out.print("Next: ecoctl up" if result.root == Path.cwd().resolve() else f"Next: cd {directory} && ecoctl up",
              markup=False)


@app.command()
def plan(ctx: typer.Context, json_output: bool = JSON_OPTION,
         detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode", help="Exit 0 when nothing is to do, 2 when changes (or unreachable systems) are pending, 1 on error (without it: 0, or 1 when a system did not answer)."),
         only: Optional[list[str]] = ONLY_OPTION, adopt: bool = ADOPT_OPTION):
    """Show how the real systems differ from ecosystem.yaml."""
    from ecoctl import ui
    from ecoctl.commands.reconcile import plan_workspace, require_converged
    from ecoctl.errors import EcoctlError
    from ecoctl.plan import Options

    try:
        result = plan_workspace(workspace_of(ctx), only=parse_only(only), options=Options(adopt=adopt))
    except EcoctlError as exc:
        if not detailed_exitcode:
            raise
        ui.error(str(exc))
        raise typer.Exit(1)  # with --detailed-exitcode, 2 means "changes pending"
    if json_output:
        ui.print_json(result.to_json())
    else:
        ui.print_plan(result)
    if detailed_exitcode and not result.empty:
        raise typer.Exit(2)
    if not detailed_exitcode:
        require_converged(result.pending)  # a plan that could not look everywhere is not a clean plan


@app.command()
def apply(ctx: typer.Context, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
          json_output: bool = JSON_OPTION,
          only: Optional[list[str]] = ONLY_OPTION, adopt: bool = ADOPT_OPTION):
    """Converge the real systems to ecosystem.yaml."""
    from ecoctl import ui
    from ecoctl.commands.reconcile import Reconciliation, require_converged
    from ecoctl.plan import Options

    with Reconciliation(workspace_of(ctx, changes=True), only=parse_only(only),
                        options=Options(adopt=adopt)) as reconciliation:
        preview = reconciliation.make_plan()
        if not preview.changes:
            if json_output:
                ui.print_json({**preview.to_json(), "applied": []})
            else:
                ui.print_plan(preview)
            require_converged(preview.pending)
            return
        if not json_output:
            ui.print_plan(preview)
            if not yes and sys.stdin.isatty() and not typer.confirm("Apply these changes?"):
                raise typer.Exit(1)
        out = ui.console()
        done = reconciliation.apply(on_change=None if json_output else lambda c: out.print("  done " + ui.change_line(c)))
    if json_output:
        ui.print_json({**done.to_json(), "applied": [c.to_json() for c in done.changes]})
    else:
        out.print(f"Applied {len(done.changes)} change(s)."
                  + (f" Pending: {', '.join(done.pending)}." if done.pending else ""))
    require_converged(done.pending)


@app.command()
def up(ctx: typer.Context, json_output: bool = JSON_OPTION,
       monitoring: bool = typer.Option(False, "--monitoring", help="Also start Grafana (docker runtime)."),
       timeout: float = typer.Option(180.0, help="Seconds to wait for services to become healthy."),
       init_swarm: bool = typer.Option(False, "--init-swarm", help="(swarm runtime) Make this Docker engine a single-node swarm if it is in none."),
       verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the image builder's output (always in .ecoctl/logs/: docker-build.log, or swarm-build.log and swarm-deploy.log)."),
       adopt: bool = ADOPT_OPTION):
    """Start the core stack and every service, provision everything, print a summary."""
    from ecoctl import ui
    from ecoctl.commands import stack
    from ecoctl.commands.reconcile import require_converged

    workspace = workspace_of(ctx, changes=True)
    try:
        with stage_display(json_output) as display:
            result = stack.up(workspace, stage=display and display.stage,
                              progress=display and display.progress, on_demand=monitoring,
                              health_timeout=timeout, verbose=verbose, adopt=adopt, init_swarm=init_swarm)
    except stack.UnhealthyServices as exc:
        if not json_output:
            err = ui.console(stderr=True)
            for name, lines in exc.logs.items():
                err.print(f"[bold]last log lines of {name}:[/]")
                for line in lines[-20:]:
                    err.print("  " + line, markup=False)
        raise
    if json_output:
        ui.print_json(result.to_json())
    else:
        ui.print_up_summary(result)
    require_converged(result.pending)


@app.command()
def down(ctx: typer.Context, volumes: bool = typer.Option(False, "--volumes", help="Also delete data (databases, metrics)."),
         yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before deleting data.")):
    """Stop the stack; data is kept unless --volumes."""
    from ecoctl import ui
    from ecoctl.commands import stack
    from ecoctl.errors import UsageError

    workspace = workspace_of(ctx, changes=True)
    if volumes and not yes:
        if not sys.stdin.isatty():
            raise UsageError("--volumes deletes every database: pass --yes to confirm")
        if not typer.confirm("Delete all data (databases, metrics) too?"):
            raise typer.Exit(1)
    stopped = stack.down(workspace, remove_volumes=volumes)
    ui.console().print("Stack stopped." + (" Data deleted." if volumes else " Data kept.")
                       if stopped else "Nothing was running.")


@app.command()
def status(ctx: typer.Context, json_output: bool = JSON_OPTION):
    """Each component's state and health, and whether the providers show drift."""
    from ecoctl import ui
    from ecoctl.commands import stack

    report = stack.status(workspace_of(ctx))
    if json_output:
        ui.print_json(report.to_json())
    else:
        ui.print_status(report)


@app.command()
def logs(ctx: typer.Context, service: str = typer.Argument(..., help="A service or core component (postgres, redis, ...)."),
         follow: bool = typer.Option(False, "--follow", "-f"),
         tail: int = typer.Option(100, help="Lines to show first.")):
    """Show a component's logs."""
    from ecoctl.runtimes import get_runtime

    for line in get_runtime(workspace_of(ctx)).logs(service, follow=follow, tail=tail):
        sys.stdout.write(line.rstrip("\n") + "\n")
        sys.stdout.flush()


@app.command()
def token(ctx: typer.Context,
          service: Optional[str] = typer.Argument(None, help="The service (default: the core service, portfolio)."),
          user: Optional[str] = typer.Option(None, "--user",
                                             help="A development user (core.signin.users) to sign in as "
                                                  "(local runtime); default: the service's own token."),
          scope: str = typer.Option("openid email profile", "--scope",
                                    help="The token's `scope` claim: space-separated OAuth2 scopes.")):
    """Print (only) a bearer token for SERVICE, from the issuer the services trust."""
    from ecoctl.commands.tokens import token_for

    sys.stdout.write(token_for(workspace_of(ctx), service, user=user, scope=scope) + "\n")


