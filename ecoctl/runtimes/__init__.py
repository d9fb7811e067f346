"""Runtimes start and stop the stack's processes; `get_runtime` picks the one ecosystem.yaml names."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ecoctl.runtimes.base import Progress, Runtime
    from ecoctl.workspace import Workspace

CLASSES = {"docker": ("ecoctl.runtimes.docker", "DockerRuntime"),
           "swarm": ("ecoctl.runtimes.swarm", "SwarmRuntime"),
           "local": ("ecoctl.runtimes.local", "LocalRuntime")}
"""`runtime:` in ecosystem.yaml -> the class that runs it (imported only when used)."""
NAMES = tuple(CLASSES)


def get_runtime(workspace: "Workspace", progress: "Progress | None" = None) -> "Runtime":
    module, name = CLASSES[workspace.ecosystem.runtime]
    return getattr(importlib.import_module(module), name)(workspace, progress)
