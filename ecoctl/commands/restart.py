"""`ecoctl restart SERVICE`: stop and start one service with its current environment (a rotated
secret, an edited .env) on the running stack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ecoctl.errors import EcoctlError

if TYPE_CHECKING:
    from ecoctl.workspace import Workspace


def prepare(workspace: "Workspace", name: str, progress: Callable[[str], None] | None = None):
    """The runtime to restart NAME with; refuses (one line) a name it cannot, or a stopped stack."""
    from ecoctl.runtimes import get_runtime

    runtime = get_runtime(workspace, progress)
    runtime.restartable(name)
    if not runtime.is_running():
        raise EcoctlError(f"the stack is not running: `ecoctl up` starts {name} with its current environment")
    return runtime


def restart(workspace: "Workspace", name: str, progress: Callable[[str], None] | None = None,
            timeout: float = 120.0) -> str:
    """Restart NAME on the running stack; its health afterwards ("healthy", "restarted" for a core piece)."""
    return prepare(workspace, name, progress).restart_service(name, timeout=timeout)
