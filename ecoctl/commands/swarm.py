"""Swarm-only actions: make a swarm to deploy on (`up --init-swarm`), `scale`, and roll a service
onto a rotated secret."""

from __future__ import annotations

from ecoctl.errors import EcoctlError, UsageError
from ecoctl.runtimes.swarm import SwarmRuntime


def _require_swarm(workspace, what: str) -> None:
    runtime = workspace.ecosystem.runtime
    if runtime != "swarm":
        raise UsageError(f"{what} is for the swarm runtime; this ecosystem runs {runtime!r}: set "
                         "`runtime: swarm` in ecosystem.yaml (or `ecoctl init --runtime swarm`)")


def init_swarm_for(workspace, init: bool = True) -> bool:
    """`up [--init-swarm]`: a swarm manager to deploy on; with `init`, make this engine a single-node
    swarm unless it is in one already (never without)."""
    _require_swarm(workspace, "--init-swarm")
    runtime = SwarmRuntime(workspace)
    try:
        return runtime.ensure_swarm(init=init)
    finally:
        runtime.close()


def scale_component(workspace, component: str, replicas: int) -> str | None:
    """`ecoctl scale`: record REPLICAS in ecosystem.yaml, then scale the running service; its health."""
    _require_swarm(workspace, "`ecoctl scale`")
    services = workspace.ecosystem.services
    if component == "authentik-worker":
        if not workspace.ecosystem.authentik_in_stack:
            raise UsageError("Authentik is external here (core.authentik.url): its workers are not ecoctl's")

        def mutate(document):
            document.setdefault("core", {}).setdefault("authentik", {})["worker_replicas"] = replicas
    elif component in services and services[component].pattern != "external":
        def mutate(document):
            document["services"][component]["replicas"] = replicas
    else:
        choices = [name for name, spec in services.items() if spec.pattern != "external"] + ["authentik-worker"]
        raise UsageError(f"cannot scale {component!r}: use one of {', '.join(choices)} (PostgreSQL, Redis and "
                         "Prometheus run one replica pinned to their volume)")
    workspace.ecosystem_file.update(mutate)
    runtime = SwarmRuntime(workspace)
    try:
        if component not in runtime.services():
            return None
        health = runtime.scale(component, replicas)
    finally:
        runtime.close()
    if health != "healthy":
        raise EcoctlError(f"{component} did not reach {replicas} healthy replica(s) ({health}): "
                          f"see `ecoctl logs {component}`")
    return health


def roll_secret(workspace, service: str, timeout: float = 180.0) -> bool:
    """After `secrets rotate`: a new versioned Docker secret, and SERVICE's replicas rolled onto it
    (start-first, so it keeps answering). False when the stack does not run it."""
    runtime = SwarmRuntime(workspace)
    try:
        if service not in runtime.services():
            return False
        runtime.deploy({service})
        health = runtime.wait_for([service], timeout)[service]
    finally:
        runtime.close()
    if health != "healthy":
        raise EcoctlError(f"{service} did not come up on its new secret ({health}): see `ecoctl logs {service}`")
    return True
