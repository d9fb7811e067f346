"""CLI: everyday operations: env, restart, doctor, secrets rotate, secrets password."""

from __future__ import annotations

import sys

import typer

from typing import Optional

from ecoctl.cli.app import app, ca_app, secrets_app
from ecoctl.cli.common import JSON_OPTION, complete_service, stage_display, workspace_of

def secrets_rotate(ctx: typer.Context, service: str = typer.Argument(..., help="A service (or `authentik`, the stack's Authentik database).", autocompletion=complete_service)):
    """Give SERVICE's database role a new password (server first, then .env), then restart what uses it."""
    from ecoctl import ui
    from ecoctl.commands.secrets import rotate
    from ecoctl.errors import UnhealthyServices

    rotation = rotate(workspace_of(ctx, changes=True), service)
    out = ui.console()
    for line in rotation.lines():
        out.print(line, markup=False)
    if rotation.failed:
        raise UnhealthyServices(rotation.failed, {})


def restart(ctx: typer.Context, service: str = typer.Argument(..., help="A service of ecosystem.yaml, or a core component that reads a rotated secret (authentik-server, authentik-worker or signin, where the stack runs them).", autocompletion=complete_service),
            timeout: float = typer.Option(120.0, help="Seconds to wait for it to become healthy."),
            json_output: bool = JSON_OPTION):
    """Restart one service with its current environment (.env read again), and wait for its health."""
    from ecoctl import ui
    from ecoctl.commands.restart import prepare
    from ecoctl.errors import UnhealthyServices

    runtime = prepare(workspace_of(ctx, changes=True), service)
    with stage_display(json_output) as display:
        if display:
            display.stage(f"restarting {service}")
            runtime.progress = display.progress
        health = runtime.restart_service(service, timeout=timeout)
    if json_output:
        ui.print_json({"service": service, "health": health})
    else:
        ui.console().print(f"Restarted {service} ({health}).")
    if health not in ("healthy", "restarted"):
        raise UnhealthyServices({service: health}, {})


def env(ctx: typer.Context, service: str = typer.Argument(..., help="A service of ecosystem.yaml.", autocompletion=complete_service),
        fmt: str = typer.Option("dotenv", "--format", "-f", help="dotenv (KEY=value), json, or shell (export KEY='value')."),
        show_secrets: bool = typer.Option(False, "--show-secrets", help="Print passwords and client secrets instead of ********.")):
    """SERVICE's whole environment as seen from this host: run it from an IDE against the running stack."""
    from ecoctl.commands.env import render, service_environment
    from ecoctl.errors import UsageError

    if fmt not in ("dotenv", "json", "shell"):
        raise UsageError(f"--format must be dotenv, json or shell, not {fmt!r}")
    variables = service_environment(workspace_of(ctx), service, show_secrets=show_secrets)
    sys.stdout.write(render(variables, fmt))


def doctor(ctx: typer.Context, json_output: bool = JSON_OPTION):
    """Check every prerequisite (engine, compose, ports, PostgreSQL, Authentik, promtool, disk, images): a verdict and a fix each. Exit 0 when none fails."""
    from ecoctl import ui
    from ecoctl.commands.doctor import doctor as run_doctor

    checks = run_doctor(workspace_of(ctx))
    failed = [check for check in checks if check.status == "fail"]
    if json_output:
        ui.print_json({"ok": not failed, "checks": [check.to_json() for check in checks]})
    else:
        ui.print_doctor(checks)
    if failed:
        raise typer.Exit(1)


def secrets_password(ctx: typer.Context, user: str = typer.Argument(..., help="A development user (core.signin.users).")):
    """Print (only) a development user's password for the local runtime's sign-in page."""
    from ecoctl.commands.secrets import dev_password

    sys.stdout.write(dev_password(workspace_of(ctx), user) + "\n")


def ca_export(ctx: typer.Context):
    """Print the ecosystem CA's root certificate (PEM), to trust it: `curl --cacert`, a browser, another host."""
    from ecoctl.commands.edge import ca_export as export

    sys.stdout.write(export(workspace_of(ctx)))


def firewall(ctx: typer.Context, service: Optional[str] = typer.Argument(None, help="One external service (default: all of them).", autocompletion=complete_service),
             fmt: str = typer.Option("nftables", "--format", "-f", help="nftables (a file for `nft -f`) or ufw (commands).")):
    """Print the firewall rules pattern-3 (external) services need: PostgreSQL and the edge from their hosts only, their metrics port to Prometheus."""
    from ecoctl.commands.edge import firewall_rules

    sys.stdout.write(firewall_rules(workspace_of(ctx), fmt, service))


secrets_app.command("rotate")(secrets_rotate)
secrets_app.command("password")(secrets_password)
ca_app.command("export")(ca_export)
app.command()(firewall)
app.command()(restart)
app.command()(env)
app.command()(doctor)
