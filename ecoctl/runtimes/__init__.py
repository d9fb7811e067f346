"""Runtimes start and stop the stack's processes; `get_runtime` picks the one ecosystem.yaml names."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ecoctl.runtimes.base import Progress, Runtime
    from ecoctl.workspace import Workspace


def get_runtime(workspace: "Workspace", progress: "Progress | None" = None) -> "Runtime":
    if workspace.ecosystem.runtime == "docker":
        from ecoctl.runtimes.docker import DockerRuntime

        return DockerRuntime(workspace, progress)
    if workspace.ecosystem.runtime == "swarm":
        from ecoctl.runtimes.swarm import SwarmRuntime

        return SwarmRuntime(workspace, progress)
    from ecoctl.runtimes.local import LocalRuntime

    return LocalRuntime(workspace, progress)
