"""`ecoctl env SERVICE`: the service's whole environment as seen from this host, to run it from an IDE
(or a shell) against the running stack. Built only by `ecoctl.contract` (its `host` target)."""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING

from ecoctl import contract
from ecoctl.errors import EcoctlError, UsageError

if TYPE_CHECKING:
    from ecoctl.workspace import Workspace

FORMATS = ("dotenv", "json", "shell")
MASK = "********"


def service_environment(workspace: "Workspace", service: str, show_secrets: bool = False) -> dict[str, str]:
    """SERVICE's variables for a process started on this host; secrets masked unless asked for."""
    ecosystem = workspace.ecosystem
    if service not in ecosystem.services:
        known = ", ".join(ecosystem.services) or "none"
        raise UsageError(f"no service {service!r} in ecosystem.yaml (services: {known}): "
                         "run `ecoctl list` to see them")
    missing = contract.missing_secrets(ecosystem, service, workspace.env.values)
    if missing:
        raise EcoctlError(f"{', '.join(missing)} not in .env yet: run `ecoctl apply` (or `ecoctl up`) first")
    variables = contract.environment(workspace, service, "host")
    if show_secrets:
        return variables
    secrets = sorted(contract.secret_values(ecosystem, service, workspace.env.values), key=len, reverse=True)
    masked = {}
    for name, value in variables.items():
        for secret in secrets:
            value = value.replace(secret, MASK)
        masked[name] = value
    return masked


def _dotenv_value(value: str) -> str:
    """Bare when safe; else single-quoted (literal in python-dotenv, compose and IDEs); a value
    holding a single quote is double-quoted with backslash escapes."""
    if value and all(c.isalnum() or c in "-_./:@%+,*" for c in value):
        return value
    if "'" not in value and "\n" not in value:
        return f"'{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("\n", "\\n")
    return f'"{escaped}"'


def render(variables: dict[str, str], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(variables, indent=2) + "\n"
    if fmt == "shell":
        return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items())
    if fmt == "dotenv":
        return "".join(f"{name}={_dotenv_value(value)}\n" for name, value in variables.items())
    raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
