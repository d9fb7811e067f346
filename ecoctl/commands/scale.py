"""`ecoctl scale NAME REPLICAS`: record the replicas in ecosystem.yaml, then scale the running stack
(a runtime that runs one copy of everything refuses, before anything is written)."""

from __future__ import annotations

from ecoctl.errors import EcoctlError


def scale_component(workspace, name: str, replicas: int) -> str | None:
    """NAME's health once REPLICAS run; None when the stack does not run it (`up` starts them)."""
    from ecoctl.runtimes import get_runtime

    runtime = get_runtime(workspace)
    try:
        key = runtime.replicas_key(name)

        def record(document) -> None:
            node = document
            for part in key[:-1]:
                node = node.setdefault(part, {})
            node[key[-1]] = replicas

        workspace.ecosystem_file.update(record)
        health = runtime.scale(name, replicas)
    finally:
        runtime.close()
    if health is not None and health != "healthy":
        raise EcoctlError(f"{name} did not reach {replicas} healthy replica(s) ({health}): "
                          f"see `ecoctl logs {name}`")
    return health
