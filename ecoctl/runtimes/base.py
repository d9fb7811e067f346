"""Runtimes start and stop the stack's processes; the providers then converge what runs.

`ecoctl.commands.stack` drives a runtime through the stages of `ecoctl up`:
  start_postgres -> (postgres provider) -> start_core -> (authentik readiness + provider)
  -> start_services -> start_monitoring -> (prometheus/grafana providers) -> wait_healthy.
Every method is idempotent: calling it on a running stack changes nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:
    from ecoctl.workspace import Workspace

Progress = Callable[[str], None]


@dataclass
class ComponentStatus:
    name: str  # a core component ("postgres", "redis", "authentik-server", "prometheus", ...) or a service
    state: str  # "running" | "stopped" | "absent" | "failed" | "external" (not ours: only asked)
    health: str  # "healthy" | "unhealthy" | "starting" | "none" (no healthcheck) | "unknown"
    url: str | None = None
    detail: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "state": self.state, "health": self.health, "url": self.url,
                "detail": self.detail}


class Runtime(ABC):
    name: str

    def __init__(self, workspace: "Workspace", progress: Progress | None = None):
        self.workspace = workspace
        self.progress = progress or (lambda message: None)

    @abstractmethod
    def start_postgres(self) -> bool:
        """Start PostgreSQL and wait until it accepts connections. True when something was started."""

    @abstractmethod
    def start_core(self) -> bool:
        """Start Redis and (docker, unless Authentik is external) Authentik server and worker."""

    @abstractmethod
    def start_services(self, names: list[str]) -> bool:
        """Build (if needed) and start the core services (`core: true` templates) and the given ones."""

    @abstractmethod
    def start_monitoring(self, grafana: bool = False) -> bool:
        """Start Prometheus (and Grafana when asked and possible)."""

    @abstractmethod
    def wait_healthy(self, names: list[str], timeout: float) -> dict[str, str]:
        """Wait until each service's health check passes; returns name -> health."""

    @abstractmethod
    def stop(self, remove_volumes: bool = False) -> bool:
        """Stop everything this runtime started; data is kept unless remove_volumes."""

    @abstractmethod
    def stop_service(self, name: str) -> bool:
        """Stop and remove one service (remove-service)."""

    @abstractmethod
    def restart_service(self, name: str, timeout: float = 120.0) -> str:
        """Stop and start one running service with its current environment (from .env, so a
        rotated secret takes effect); returns its health once it settles (see wait_healthy)."""

    @abstractmethod
    def is_running(self) -> bool:
        """Whether the stack is up (PostgreSQL running)."""

    @abstractmethod
    def status(self) -> list[ComponentStatus]:
        """Every component this runtime manages."""

    @abstractmethod
    def logs(self, component: str, follow: bool = False, tail: int = 100) -> Iterator[str]:
        """The component's log lines."""

    def not_run(self) -> dict[str, str]:
        """Core pieces this runtime does not run on this host (component -> why), so summaries do
        not show them at an address where nothing answers."""
        return {}

    def reload_prometheus(self) -> bool:
        """Make a running Prometheus read prometheus.yml again and check that it took it; False
        when none answers (it reads the file when it starts). Over HTTP (`/-/reload`) here; the
        local runtime sends SIGHUP through supervisord instead."""
        from ecoctl.clients import prometheus

        return prometheus.reload(self.workspace.prometheus_url)

    def core_components(self) -> list[str]:
        """The core pieces a container runtime (docker, swarm) runs for this ecosystem."""
        core = self.workspace.ecosystem.core
        names = [] if core.postgres.external else ["postgres"]
        names.append("redis")
        if self.workspace.ecosystem.authentik_in_stack:
            names += ["authentik-server", "authentik-worker"]
        if core.monitoring.enabled:
            names.append("prometheus")
        return names

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.workspace.ecosystem.services[name].port}"
