"""CLI: services and their templates: add-service, remove-service, list, templates list, upgrade, scale."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from ecoctl.cli.app import app
from ecoctl.cli.common import JSON_OPTION, stage_display, workspace_of

@app.command("add-service")
def add_service(ctx: typer.Context, name: str = typer.Argument(..., help="lowercase letters, digits, hyphens; 2-40 characters"),
                template: Optional[str] = typer.Option(None, help="A template name or ./path/to/template."),
                port: Optional[int] = typer.Option(None, help="The port it listens on (default: the template's)."),
                pattern: Optional[str] = typer.Option(None, help="compose (default), separate or external."),
                host: Optional[str] = typer.Option(None, help="Where an external service runs."),
                reads: Optional[list[str]] = typer.Option(None, "--reads", help="Another service whose database it may read."),
                writes: Optional[list[str]] = typer.Option(None, "--writes", hidden=True),
                redirect_uri: Optional[list[str]] = typer.Option(None, "--redirect-uri", help="An OAuth2 redirect URI."),
                calls: Optional[list[str]] = typer.Option(None, "--calls", help="A web app (--template react-vite): a service whose API it calls with its users' tokens."),
                replicas: Optional[int] = typer.Option(None, "--replicas", min=0, max=100, help="Running copies (swarm runtime)."),
                no_apply: bool = typer.Option(False, "--no-apply", help="Write files only; touch no server."),
                yes: bool = typer.Option(False, "--yes", "-y", help="Change an existing service without asking."),
                adopt: bool = typer.Option(False, "--adopt", help="Take over a PostgreSQL role or database with its name that ecoctl did not create (reset to exactly ecoctl's grants)."),
                json_output: bool = JSON_OPTION):
    """Scaffold a service, create its database and role, OIDC app, scrape job and dashboard, start it."""
    from ecoctl import ui
    from ecoctl.commands import services

    if writes:
        raise services.shared_write_refused(name, writes[0])
    request = services.ServiceRequest(name=name, template=template, port=port, pattern=pattern,
                                      reads=reads, redirect_uris=redirect_uri or [], host=host, replicas=replicas,
                                      calls=calls)
    workspace = workspace_of(ctx, changes=True)
    existing = workspace.ecosystem.services.get(name)
    if existing is not None and not yes and sys.stdin.isatty():
        wanted = services.desired_spec(workspace, request)
        if wanted != existing and not typer.confirm(f"Change the existing service {name} "
                                                    f"({services.spec_difference(existing, wanted)})?"):
            raise typer.Exit(1)
    with stage_display(json_output) as display:
        result = services.add_service(workspace, request, apply=not no_apply,
                                      progress=display and display.progress, adopt=adopt)
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
    result = services.remove_service(workspace_of(ctx, changes=True), name, drop_data=drop_data, delete_files=delete_files)
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

    rows = services.list_services(workspace_of(ctx))
    if json_output:
        ui.print_json({"services": rows})
    else:
        ui.print_service_table(rows)



templates_app = typer.Typer(help="Service templates.", rich_markup_mode=None)
app.add_typer(templates_app, name="templates")


@templates_app.command("list")
def templates_list(ctx: typer.Context, json_output: bool = JSON_OPTION):
    """The templates (shipped, and the ecosystem's templates_dir; add-service uses all but the core
    ones), their versions, and each service's template version (behind: `ecoctl upgrade` brings it up)."""
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
        workspace = workspace_of(ctx)
        extra = workspace.template_dirs()
    found = list_templates(extra)
    services = template_status(workspace) if workspace else []
    if json_output:
        ui.print_json({"templates": [{"name": t.name, "description": t.description, "version": t.version,
                                      "versions": versions(Source(t, t.source, t.name)),
                                      "changelog": [{"version": v, "summary": s} for v, s in t.changelog],
                                      "default_port": t.default_port, "core": t.core, "optional": t.optional,
                                      "source": str(t.path)}
                                     for t in found],
                       "services": services})
        return
    out = ui.console()
    for info in found:
        core = (f"(core: `ecoctl init` creates {info.core_service}"
                f"{', unless --without ' + info.core_service if info.optional else ''}) " if info.core else "")
        out.print(f"{info.name:<20} v{info.version:<4} port {info.default_port:<6} {core}{info.description}",
                  markup=False)
    for row in services:
        state = ("no record: `ecoctl upgrade {0} --adopt-from VERSION`".format(row["service"])
                 if row["behind"] is None else
                 f"behind (v{row['latest']}): `ecoctl upgrade {row['service']}`" if row["behind"] else "up to date")
        version = f"v{row['version']}" if row["version"] else "v?"
        out.print(f"  service {row['service']:<20} {row['template']} {version:<4} {state}", markup=False)


@app.command()
def upgrade(ctx: typer.Context,
            services: Optional[list[str]] = typer.Argument(None, metavar="SERVICE", help="Services to upgrade (default: all; those with no record are skipped, and named)."),
            to: Optional[str] = typer.Option(None, "--to", metavar="VERSION", help="The template version (a number; a tag or commit for git templates)."),
            dry_run: bool = typer.Option(False, "--dry-run", help="Print a unified diff of what would change; write nothing."),
            adopt_from: Optional[str] = typer.Option(None, "--adopt-from", metavar="VERSION", help="For a service rendered before ecoctl recorded templates: the version it was made from."),
            json_output: bool = JSON_OPTION):
    """Bring services up to their template's version by a three-way merge; conflicts leave diff3 markers (exit 1)."""
    from ecoctl import ui
    from ecoctl.commands.upgrade import upgrade as run_upgrade

    result = run_upgrade(workspace_of(ctx, changes=not dry_run), services, to=to, dry_run=dry_run,
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
    from ecoctl.commands.scale import scale_component

    health = scale_component(workspace_of(ctx, changes=True), component, replicas)
    if json_output:
        ui.print_json({"component": component, "replicas": replicas, "health": health})
    else:
        ui.console().print(f"{component}: {replicas} replica(s), {health or 'not running (ecoctl up starts it)'}")


