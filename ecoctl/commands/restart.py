"""`ecoctl restart SERVICE`: stop and start one service with its current environment (a rotated
secret, an edited .env) on the running stack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ecoctl.errors import EcoctlError, UsageError

if TYPE_CHECKING:
    from ecoctl.workspace import Workspace

AUTHENTIK_CONTAINERS = ("authentik-server", "authentik-worker")
"""Core pieces that read a service secret from .env (Authentik's database password), docker only."""


def restartable(workspace: "Workspace", name: str) -> None:
    """Refuse, with what to do, a name that is not a service this runtime runs."""
    ecosystem = workspace.ecosystem
    if name in AUTHENTIK_CONTAINERS and ecosystem.runtime == "docker" and ecosystem.authentik_in_stack:
        return
    spec = ecosystem.services.get(name)
    if spec is None:
        known = ", ".join(ecosystem.services) or "none"
        raise UsageError(f"no service {name!r} in ecosystem.yaml (services: {known}): "
                         "run `ecoctl list` to see them")
    if spec.pattern == "external":
        raise UsageError(f"{name} is external (runs on {spec.host or 'another host'}): restart it where it runs")


def prepare(workspace: "Workspace", name: str, progress: Callable[[str], None] | None = None):
    """The runtime to restart NAME with; refuses (one line) a name it cannot, or a stopped stack."""
    from ecoctl.runtimes import get_runtime

    restartable(workspace, name)
    runtime = get_runtime(workspace, progress)
    if not runtime.is_running():
        raise EcoctlError(f"the stack is not running: `ecoctl up` starts {name} with its current environment")
    return runtime


def restart(workspace: "Workspace", name: str, progress: Callable[[str], None] | None = None,
            timeout: float = 120.0) -> str:
    """Restart NAME on the running stack; its health afterwards ("healthy", "restarted" for a core piece)."""
    return prepare(workspace, name, progress).restart_service(name, timeout=timeout)


def restart_if_running(workspace: "Workspace", names: list[str],
                       progress: Callable[[str], None] | None = None) -> dict[str, str] | None:
    """Restart NAMES when the stack runs (name -> health); None when it does not run."""
    from ecoctl.runtimes import get_runtime

    runtime = get_runtime(workspace, progress)
    if not runtime.is_running():
        return None
    return {name: runtime.restart_service(name) for name in names}
