"""The Typer application every command module of the CLI registers its commands on."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ecoctl.support.typer_params import LazyCoercionGroup

app = typer.Typer(name="ecoctl", cls=LazyCoercionGroup, no_args_is_help=True, add_completion=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="Provision and run a microservices ecosystem around the Portfolio Manager service.")
secrets_app = typer.Typer(help="Secrets in .env.", rich_markup_mode=None)
app.add_typer(secrets_app, name="secrets")
ca_app = typer.Typer(help="The ecosystem's certificate authority (.ecoctl/ca/).", rich_markup_mode=None)
app.add_typer(ca_app, name="ca")


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
def _global(ctx: typer.Context, directory: Optional[str] = typer.Option(  # str, not Path: Typer's Path coercion imports pydantic
        None, "--dir", "-C", metavar="PATH", help="The ecosystem directory (default: nearest with ecosystem.yaml)."),
        _version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                      help="Print ecoctl's version and exit.")):
    ctx.obj = Path(directory) if directory is not None else None
