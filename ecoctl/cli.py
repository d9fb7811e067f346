"""The command line: parses arguments, calls the core, prints. Nothing else lives here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ecoctl import cli_everyday as everyday
from ecoctl.support.typer_params import LazyCoercionGroup

app = typer.Typer(name="ecoctl", cls=LazyCoercionGroup, no_args_is_help=True, add_completion=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="Provision and run a microservices ecosystem around the Portfolio Manager service.")
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object (for CI) instead of text.")
ONLY_OPTION = typer.Option(None, "--only", metavar="SYSTEMS",
                           help="Limit to these systems, comma-separated or repeated: files, compose, "
                                "postgres, authentik, prometheus, grafana (e.g. --only files,compose).")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("ecoctl")
        except PackageNotFoundError:
            found = "unknown (not installed)"
        sys.stdout.write(f"ecoctl {found}\n")
        raise typer.Exit()


@app.callback()
def _global(ctx: typer.Context, directory: Optional[Path] = typer.Option(
        None, "--dir", "-C", help="The ecosystem directory (default: nearest with ecosystem.yaml)."),
        _version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                      help="Print ecoctl's version and exit.")):
    ctx.obj = directory


def _workspace(ctx: typer.Context, changes: bool = False):
    """The ecosystem; `changes=True` for commands that edit it (they run one at a time)."""
    from ecoctl.workspace import Workspace

    workspace = Workspace.open(ctx.obj)
    if changes:
        workspace.lock_for_changes()
    return workspace


@app.command()
def init(ctx: typer.Context, directory: Path = typer.Argument(..., help="Where to create the ecosystem."),
         runtime: Optional[str] = typer.Option(None, help="docker, swarm or local (default: docker when an engine answers and Compose v2 is available, else local)."),
         force: bool = typer.Option(False, "--force", help="Re-create missing files and secrets of an existing ecosystem; existing secrets are kept."),
         json_output: bool = JSON_OPTION):
    """Create a new ecosystem: ecosystem.yaml, compose.yaml, .env (0600), monitoring/, services/portfolio/."""
    from ecoctl import ui
    from ecoctl.errors import UsageError
    from ecoctl.commands.init import init_ecosystem

    if runtime not in (None, "docker", "local", "swarm"):
        raise UsageError(f"--runtime must be docker, swarm or local, not {runtime!r}")
    result = init_ecosystem(directory, runtime=runtime, force=force)
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


def _only(values: Optional[list[str]]):
    from ecoctl.commands.reconcile import parse_only

    return parse_only(values)


@app.command()
def plan(ctx: typer.Context, json_output: bool = JSON_OPTION,
         detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode", help="Exit 0 when nothing is to do, 2 when changes (or unreachable systems) are pending, 1 on error (without it: 0, or 1 when a system did not answer)."),
         only: Optional[list[str]] = ONLY_OPTION):
    """Show how the real systems differ from ecosystem.yaml."""
    from ecoctl import ui
    from ecoctl.commands.reconcile import plan_workspace, require_converged
    from ecoctl.errors import EcoctlError

    try:
        result = plan_workspace(_workspace(ctx), only=_only(only))
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
          only: Optional[list[str]] = ONLY_OPTION):
    """Converge the real systems to ecosystem.yaml."""
    from ecoctl import ui
    from ecoctl.commands.reconcile import Reconciliation, require_converged

    with Reconciliation(_workspace(ctx, changes=True), only=_only(only)) as reconciliation:
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


def _stage_display(json_output: bool):
    import contextlib

    from ecoctl import ui

    return contextlib.nullcontext() if json_output else ui.StageDisplay()


@app.command()
def up(ctx: typer.Context, json_output: bool = JSON_OPTION,
       monitoring: bool = typer.Option(False, "--monitoring", help="Also start Grafana (docker runtime)."),
       timeout: float = typer.Option(180.0, help="Seconds to wait for services to become healthy."),
       init_swarm: bool = typer.Option(False, "--init-swarm", help="(swarm runtime) Make this Docker engine a single-node swarm if it is in none."),
       verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the image builder's output (docker runtime; always in .ecoctl/logs/docker-build.log).")):
    """Start the core stack and every service, provision everything, print a summary."""
    from ecoctl import ui
    from ecoctl.commands import stack
    from ecoctl.commands.reconcile import require_converged

    workspace = _workspace(ctx, changes=True)
    if init_swarm or workspace.ecosystem.runtime == "swarm":
        from ecoctl.commands.swarm import init_swarm_for

        init_swarm_for(workspace, init=init_swarm)  # a swarm to deploy on, before any stage runs
    try:
        with _stage_display(json_output) as display:
            result = stack.up(workspace, stage=display and display.stage,
                              progress=display and display.progress, grafana=monitoring,
                              health_timeout=timeout, verbose=verbose)
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

    workspace = _workspace(ctx, changes=True)
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

    report = stack.status(_workspace(ctx))
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

    for line in get_runtime(_workspace(ctx)).logs(service, follow=follow, tail=tail):
        sys.stdout.write(line.rstrip("\n") + "\n")
        sys.stdout.flush()


@app.command()
def token(ctx: typer.Context, service: str = typer.Argument("portfolio"),
          sub: str = typer.Option("local-user", "--sub", help="The token's subject (user id)."),
          ttl: int = typer.Option(3600, "--ttl", help="Lifetime in seconds."),
          scope: str = typer.Option("openid email profile", "--scope",
                                    help="The token's `scope` claim: space-separated OAuth2 scopes.")):
    """Print (only) a bearer token the local runtime's services accept."""
    from ecoctl.commands.tokens import token_for

    sys.stdout.write(token_for(_workspace(ctx), service, subject=sub, ttl=ttl, scope=scope) + "\n")


@app.command("add-service")
def add_service(ctx: typer.Context, name: str = typer.Argument(..., help="lowercase letters, digits, hyphens; 2-40 characters"),
                template: Optional[str] = typer.Option(None, help="A template name or ./path/to/template."),
                port: Optional[int] = typer.Option(None, help="The port it listens on (default: the template's)."),
                pattern: Optional[str] = typer.Option(None, help="compose (default), separate or external."),
                host: Optional[str] = typer.Option(None, help="Where an external service runs."),
                reads: Optional[list[str]] = typer.Option(None, "--reads", help="Another service whose database it may read."),
                writes: Optional[list[str]] = typer.Option(None, "--writes", hidden=True),
                redirect_uri: Optional[list[str]] = typer.Option(None, "--redirect-uri", help="An OAuth2 redirect URI."),
                replicas: Optional[int] = typer.Option(None, "--replicas", min=0, max=100, help="Running copies (swarm runtime)."),
                no_apply: bool = typer.Option(False, "--no-apply", help="Write files only; touch no server."),
                yes: bool = typer.Option(False, "--yes", "-y", help="Change an existing service without asking."),
                json_output: bool = JSON_OPTION):
    """Scaffold a service, create its database and role, OIDC app, scrape job and dashboard, start it."""
    from ecoctl import ui
    from ecoctl.commands import services

    if writes:
        raise services.shared_write_refused(name, writes[0])
    request = services.ServiceRequest(name=name, template=template, port=port, pattern=pattern,
                                      reads=reads, redirect_uris=redirect_uri or [], host=host, replicas=replicas)
    workspace = _workspace(ctx, changes=True)
    existing = workspace.ecosystem.services.get(name)
    if existing is not None and not yes and sys.stdin.isatty():
        wanted = services.desired_spec(workspace, request)
        if wanted != existing and not typer.confirm(f"Change the existing service {name} "
                                                    f"({services.spec_difference(existing, wanted)})?"):
            raise typer.Exit(1)
    with _stage_display(json_output) as display:
        result = services.add_service(workspace, request, apply=not no_apply,
                                      progress=display and display.progress)
    if json_output:
        ui.print_json(result.to_json())
    else:
        ui.print_service_result(result)
    if not no_apply:
        from ecoctl.commands.reconcile import require_converged

        require_converged(result.pending)
    if result.health not in (None, "healthy"):
        from ecoctl.errors import EcoctlError

        raise EcoctlError(f"{name} started but is {result.health}: see `ecoctl logs {name}`")


@app.command("remove-service")
def remove_service(ctx: typer.Context, name: str,
                   drop_data: bool = typer.Option(False, "--drop-data", help="Also drop its database."),
                   delete_files: bool = typer.Option(False, "--delete-files", help="Also delete services/NAME/."),
                   yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before dropping data (needed with --drop-data when not on a terminal)."),
                   json_output: bool = JSON_OPTION):
    """Undo add-service: stop it, remove its scrape job, dashboard, OIDC app, role (and data with --drop-data)."""
    from ecoctl import ui
    from ecoctl.commands import services
    from ecoctl.errors import UsageError

    if drop_data and not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"--drop-data deletes {name}'s database: pass --yes to confirm")
        if not typer.confirm(f"Drop {name}'s database and all its data?"):
            raise typer.Exit(1)
    result = services.remove_service(_workspace(ctx, changes=True), name, drop_data=drop_data, delete_files=delete_files)
    if json_output:
        ui.print_json(result.to_json())
    else:
        ui.print_service_result(result)
    from ecoctl.commands.reconcile import require_converged

    require_converged(result.pending)


@app.command("list")
def list_services(ctx: typer.Context, json_output: bool = JSON_OPTION):
    """Each service: template, port, pattern, and its state per provider."""
    from ecoctl import ui
    from ecoctl.commands import services

    rows = services.list_services(_workspace(ctx))
    if json_output:
        ui.print_json({"services": rows})
    else:
        ui.print_service_table(rows)


templates_app = typer.Typer(help="Service templates.", rich_markup_mode=None)
app.add_typer(templates_app, name="templates")


@templates_app.command("list")
def templates_list(ctx: typer.Context, json_output: bool = JSON_OPTION):
    """The templates add-service can use (shipped, and the ecosystem's templates_dir), their versions,
    and each service's template version (behind: `ecoctl upgrade` brings it up)."""
    from ecoctl import ui
    from ecoctl.commands.upgrade import template_status
    from ecoctl.errors import UsageError
    from ecoctl.service_templates import list_templates
    from ecoctl.template_sources import Source, versions
    from ecoctl.workspace import find_root

    try:
        find_root(ctx.obj)
    except UsageError:  # outside an ecosystem: the shipped templates only
        workspace, extra = None, []
    else:
        workspace = _workspace(ctx)
        extra = workspace.template_dirs()
    found = list_templates(extra)
    services = template_status(workspace) if workspace else []
    if json_output:
        ui.print_json({"templates": [{"name": t.name, "description": t.description, "version": t.version,
                                      "versions": versions(Source(t, t.source, t.name)),
                                      "changelog": [{"version": v, "summary": s} for v, s in t.changelog],
                                      "default_port": t.default_port, "source": str(t.path)} for t in found],
                       "services": services})
        return
    out = ui.console()
    for info in found:
        out.print(f"{info.name:<20} v{info.version:<4} port {info.default_port:<6} {info.description}", markup=False)
    for row in services:
        state = ("no record: `ecoctl upgrade {0} --adopt-from VERSION`".format(row["service"])
                 if row["behind"] is None else
                 f"behind (v{row['latest']}): `ecoctl upgrade {row['service']}`" if row["behind"] else "up to date")
        version = f"v{row['version']}" if row["version"] else "v?"
        out.print(f"  service {row['service']:<20} {row['template']} {version:<4} {state}", markup=False)


@app.command()
def upgrade(ctx: typer.Context,
            services: Optional[list[str]] = typer.Argument(None, metavar="SERVICE", help="Services to upgrade (default: all rendered from a template)."),
            to: Optional[str] = typer.Option(None, "--to", metavar="VERSION", help="The template version (a number; a tag or commit for git templates)."),
            dry_run: bool = typer.Option(False, "--dry-run", help="Print a unified diff of what would change; write nothing."),
            adopt_from: Optional[str] = typer.Option(None, "--adopt-from", metavar="VERSION", help="For a service rendered before ecoctl recorded templates: the version it was made from."),
            json_output: bool = JSON_OPTION):
    """Bring services up to their template's version by a three-way merge; conflicts leave diff3 markers (exit 1)."""
    from ecoctl import ui
    from ecoctl.commands.upgrade import upgrade as run_upgrade

    result = run_upgrade(_workspace(ctx, changes=not dry_run), services, to=to, dry_run=dry_run,
                         adopt_from=adopt_from)
    if json_output:
        ui.print_json(result.to_json())
    else:
        for line in result.text():
            sys.stdout.write(line.rstrip("\n") + "\n")
    if result.conflicts and not dry_run:
        ui.error(f"{len(result.conflicts)} file(s) with conflicts: resolve the <<<<<<< markers in "
                 f"{', '.join(result.conflicts)}, then commit")
        raise typer.Exit(1)


@app.command()
def scale(ctx: typer.Context, component: str = typer.Argument(..., help="A service, or authentik-worker."),
          replicas: int = typer.Argument(..., min=0, max=100),
          json_output: bool = JSON_OPTION):
    """(swarm runtime) Run REPLICAS copies of a service: ecosystem.yaml, then the running stack."""
    from ecoctl import ui
    from ecoctl.commands.swarm import scale_component

    health = scale_component(_workspace(ctx, changes=True), component, replicas)
    if json_output:
        ui.print_json({"component": component, "replicas": replicas, "health": health})
    else:
        ui.console().print(f"{component}: {replicas} replica(s), {health or 'not running (ecoctl up starts it)'}")


secrets_app = typer.Typer(help="Secrets in .env.", rich_markup_mode=None)
app.add_typer(secrets_app, name="secrets")


secrets_app.command("rotate")(everyday.secrets_rotate)
app.command()(everyday.restart)
app.command()(everyday.env)
app.command()(everyday.doctor)


def main() -> None:
    from ecoctl.errors import EcoctlError

    try:
        app(prog_name="ecoctl")  # also names the completion variable: _ECOCTL_COMPLETE
    except EcoctlError as exc:
        from ecoctl import ui

        ui.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as exc:  # a bug, or a failure no provider translated: still one line
        import os

        if os.environ.get("ECOCTL_DEBUG"):
            raise
        from ecoctl import ui

        text = " ".join(str(exc)[:2000].split())
        text = text if len(text) <= 200 else text[:197] + "..."  # never a flood of a bad value
        ui.error(f"unexpected {type(exc).__name__}: {text} (run again with ECOCTL_DEBUG=1 for the "
                 "traceback, and please report it)")
        sys.exit(1)
