"""Runtimes start and stop the stack's processes; the providers then converge what runs.

`ecoctl.commands.stack` drives a runtime through the stages of `ecoctl up`:
  start_postgres -> (postgres provider) -> start_core -> (authentik readiness + provider)
  -> start_services -> start_monitoring -> (prometheus/grafana providers) -> wait_healthy.
Each stage starts the catalog's components of that stage (ecoctl.components) that this runtime
runs. Every method is idempotent: calling it on a running stack changes nothing.

Everything else that differs by runtime is a method here too (doctor's checks, who holds a port,
what `restart`, `scale` and `secrets rotate` do), so nothing outside runtimes/ asks which runtime
an ecosystem uses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from ecoctl import components
from ecoctl.errors import UsageError

if TYPE_CHECKING:
    from ecoctl.clients.postgres_dump import Tool
    from ecoctl.components import Component
    from ecoctl.workspace import Workspace

Progress = Callable[[str], None]


class Live(str):
    """A progress message that replaces the previous live one (e.g. a build's latest output line):
    one updating line on a terminal, left out elsewhere (a log holds it)."""


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


@dataclass
class Check:
    """One of `ecoctl doctor`'s lines."""

    name: str
    status: str  # ok | warn | skip | fail
    verdict: str
    fix: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "status": self.status, "verdict": self.verdict, "fix": self.fix}


def swarm_only(what: str, runtime: str) -> UsageError:
    return UsageError(f"{what} is for the swarm runtime; this ecosystem runs {runtime!r}: set "
                      "`runtime: swarm` in ecosystem.yaml (or `ecoctl init --runtime swarm`)")


class Runtime(ABC):
    name: str

    def __init__(self, workspace: "Workspace", progress: Progress | None = None):
        self.workspace = workspace
        self.progress = progress or (lambda message: None)

    @abstractmethod
    def start_postgres(self) -> bool:
        """Start PostgreSQL (stage `postgres`) and wait until it accepts connections. True when
        something was started."""

    @abstractmethod
    def start_core(self) -> bool:
        """Start the components of stage `core` (Redis; Authentik when it runs in the stack)."""

    @abstractmethod
    def start_services(self, names: list[str]) -> bool:
        """Build (if needed) and start the core services (`core: true` templates) and the given ones."""

    @abstractmethod
    def start_monitoring(self, on_demand: bool = False) -> bool:
        """Start the components of stage `monitoring` (Prometheus; Grafana too when `on_demand`)."""

    @abstractmethod
    def wait_healthy(self, names: list[str], timeout: float) -> dict[str, str]:
        """Wait until each service's health check passes; returns name -> health."""

    @abstractmethod
    def stop(self, remove_volumes: bool = False) -> bool:
        """Stop everything this runtime started; data is kept unless remove_volumes."""

    @abstractmethod
    def stop_service(self, name: str) -> bool:
        """Stop and remove one service (remove-service)."""

    def services_changed(self) -> None:
        """ecosystem.yaml's services changed under a running stack (remove-service): a component
        whose config names them (the local runtime's sign-in: its clients) reads it again."""

    @abstractmethod
    def restart_service(self, name: str, timeout: float = 120.0) -> str:
        """Stop and start one running service with its current environment (from .env, so a
        rotated secret takes effect); returns its health once it settles (see wait_healthy)."""

    @abstractmethod
    def is_running(self) -> bool:
        """Whether the stack is up: its database stage runs (anything of it, with an external database)."""

    @abstractmethod
    def status(self) -> list[ComponentStatus]:
        """Every component this runtime manages."""

    @abstractmethod
    def logs(self, component: str, follow: bool = False, tail: int = 100) -> Iterator[str]:
        """The component's log lines."""

    # -- which components run -------------------------------------------------------------------
    @abstractmethod
    def runs(self, component: "Component") -> bool:
        """Whether this runtime runs COMPONENT here (it has a recipe for it, and what it needs)."""

    def components(self) -> list["Component"]:
        """The core components this runtime runs for this ecosystem, in start order (those started
        only on demand left out)."""
        return [component for component in components.enabled(self.workspace.ecosystem)
                if not component.on_demand and self.runs(component)]

    def stage(self, stage: str, on_demand: bool = False) -> list["Component"]:
        """The components of STAGE to start (with the on-demand ones when asked)."""
        return [component for component in components.enabled(self.workspace.ecosystem, stage)
                if self.runs(component) and (on_demand or not component.on_demand)]

    def started_on_demand(self) -> list[str]:
        """The components this runtime starts only when asked (`up --monitoring`)."""
        return [component.name for component in components.enabled(self.workspace.ecosystem)
                if component.on_demand and self.runs(component)]

    def not_run(self) -> dict[str, str]:
        """Optional components this runtime skips on this host (component -> why, and how to get
        it), so summaries do not show them at an address where nothing answers."""
        return {}

    # -- what commands ask ------------------------------------------------------------------------
    @abstractmethod
    def doctor_checks(self) -> list[Check]:
        """What this runtime needs on this host (an engine, binaries, images), checked."""

    @abstractmethod
    def holds_port(self, name: str, port: int) -> bool:
        """Whether this ecosystem's own NAME (a component or service) holds PORT."""

    def preflight(self, init_swarm: bool = False) -> None:
        """Before `up` starts anything: refuse what cannot work here (one line)."""
        if init_swarm:
            raise swarm_only("--init-swarm", self.name)

    def restartable(self, name: str) -> None:
        """Refuse, with what to do, a name `ecoctl restart` cannot restart here."""
        if name in {component.name for component in self.components() if component.restartable}:
            return
        services = self.workspace.ecosystem.services
        spec = services.get(name)
        if spec is None:
            known = ", ".join(services) or "none"
            raise UsageError(f"no service {name!r} in ecosystem.yaml (services: {known}): "
                             "run `ecoctl list` to see them")
        if spec.pattern == "external":
            raise UsageError(f"{name} is external (runs on {spec.host or 'another host'}): restart it where it runs")

    rotation_done = "Restarted {} with it."
    """How `secrets rotate` says what `after_secret_rotated` did ({}: the names and their health)."""

    def after_secret_rotated(self, names: list[str]) -> dict[str, str] | None:
        """NAMES read a secret .env now holds anew: restart them on the running stack (name ->
        health); None when the stack does not run (they read it when `ecoctl up` starts them)."""
        if not self.is_running():
            return None
        return {name: self.restart_service(name) for name in names}

    def replicas_key(self, name: str) -> tuple[str, ...]:
        """The ecosystem.yaml key of NAME's replicas (what `ecoctl scale` records)."""
        raise swarm_only("`ecoctl scale`", self.name)

    def scale(self, name: str, replicas: int, timeout: float = 180.0) -> str | None:
        """Run REPLICAS of NAME on the running stack; its health (None: the stack does not run it)."""
        raise swarm_only("`ecoctl scale`", self.name)

    def postgres_tool(self, server_major: int) -> "Tool":
        """How pg_dump/pg_restore reach the ecosystem's PostgreSQL (a server of SERVER_MAJOR): a
        client of that version on this host here; runtimes that run it in a container use the
        container's own (see runtimes/postgres_tools.py)."""
        from ecoctl.runtimes.postgres_tools import host_tool

        return host_tool(self.workspace.postgres, server_major)

    def close(self) -> None:
        """Let go of what the runtime holds open (an engine connection)."""

    # -- shared helpers ---------------------------------------------------------------------------
    def reload_prometheus(self) -> bool:
        """Make a running Prometheus read prometheus.yml again and check that it took it; False
        when none answers (it reads the file when it starts). Over HTTP (`/-/reload`) here; the
        local runtime sends SIGHUP through supervisord instead."""
        from ecoctl.clients import prometheus

        return prometheus.reload(self.workspace.prometheus_url)

    def write_container_configs(self) -> list[str]:
        """The rendered config file (and files) of each component this runtime runs that has them
        (written where its compose entry mounts them); the names of those whose files changed."""
        from ecoctl.support.atomic import write_atomic

        changed = []
        for component in self.components():
            recipe = component.container
            if recipe is None:
                continue
            if recipe.config is not None:
                path = self.workspace.root / recipe.config_file
                if path.is_dir() and not any(path.iterdir()):
                    path.rmdir()  # what Docker makes of a bind-mounted file that was missing (`compose up` by hand)
                text = recipe.config(self.workspace.ecosystem)
                if not path.is_file() or path.read_text() != text:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    write_atomic(path, text, mode=0o644)
                    changed.append(component.name)
            if recipe.files is not None and self._write_files(component):
                changed.append(component.name)
        return list(dict.fromkeys(changed))

    def _write_files(self, component: "Component") -> bool:
        """COMPONENT's `files` written into its `files_dir` (0700, each file 0600); whether one changed.
        The signing key the development sign-in signs with is made first when it is missing."""
        from ecoctl.components import Place
        from ecoctl.local_auth import ensure_signing_key
        from ecoctl.support.atomic import write_atomic

        recipe, workspace = component.container, self.workspace
        if workspace.ecosystem.signin_runs and ensure_signing_key(workspace):
            self.progress(f"created the signing key in {workspace.state_dir / 'keys'}")
        folder = workspace.root / recipe.files_dir
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        first = component.ports[0].inside if component.ports else 0
        place = Place(binary="", folder=folder, data=folder, config=folder / f"{component.name}.json", port=first,
                      secrets={key: workspace.env.get(key) or "" for key in component.secrets},
                      ecosystem=workspace.ecosystem, env=dict(workspace.env.values), state_dir=workspace.state_dir)
        changed = False
        for name, text in recipe.files(place).items():
            path = folder / name
            if path.is_file() and path.read_text() == text:
                continue
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(path, text, mode=0o600)
            changed = True
        return changed

    def reload_component(self, name: str) -> bool:
        """Make the running core component NAME read its files again (its reload signal); False
        when it does not run (it reads them when it starts)."""
        return False

    def core_components(self) -> list[str]:
        return [component.name for component in self.components()]

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.workspace.ecosystem.services[name].port}"


def url_of(name: str, host: str, port: int) -> str:
    """A component's (or a service's) address, in its scheme."""
    component = components.named(name)
    return f"{component.scheme if component else 'http'}://{host}:{port}"
