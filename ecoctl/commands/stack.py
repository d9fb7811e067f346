"""`ecoctl up / down / status`: drive a runtime through the stack's stages and converge the providers.

Stages of `up`: PostgreSQL -> databases and roles -> Redis and Authentik -> Authentik readiness
and OIDC applications -> services -> monitoring -> health. Each stage is idempotent, so a second
`up` on a running stack starts nothing and applies nothing, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ecoctl import components, contract
from ecoctl.commands.reconcile import converge, plan_workspace
from ecoctl.errors import EcoctlError, UnhealthyServices
from ecoctl.plan import Change, Options, pending_json
from ecoctl.providers import systems_used
from ecoctl.runtimes import get_runtime
from ecoctl.runtimes.base import ComponentStatus

Stage = Callable[[str], None]


@dataclass
class ServiceSummary:
    name: str
    url: str
    health: str
    credentials: str

    def to_json(self) -> dict:
        return {"name": self.name, "url": self.url, "health": self.health, "credentials": self.credentials}


@dataclass
class UpResult:
    runtime: str
    services: list[ServiceSummary] = field(default_factory=list)
    endpoints: dict[str, str] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    applied: list[Change] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.started or self.applied)

    def to_json(self) -> dict:
        return {"runtime": self.runtime, "changed": self.changed,
                "services": [service.to_json() for service in self.services],
                "endpoints": self.endpoints, "started": self.started,
                "applied": [change.to_json() for change in self.applied],
                "pending": pending_json(self.pending),
                "notes": self.notes}


def credentials_hint(workspace, name: str, not_run: dict[str, str] | None = None) -> str:
    """The .env keys of NAME's credentials, but those of a component that does not run (`not_run`)."""
    if workspace.ecosystem.services[name].client == "public":  # a web app: people sign in to it
        users = workspace.ecosystem.core.signin.users
        return (f"sign in as {users[0]}: `ecoctl secrets password {users[0]}`"
                if users and not workspace.ecosystem.authentik_used else "sign in through Authentik")
    skipped = {key for component in (not_run or {}) if component not in workspace.ecosystem.services
               for key in components.named(component).secrets}
    keys = [key for key in contract.service_secret_keys(workspace.ecosystem, name).values() if key not in skipped]
    if not workspace.ecosystem.authentik_used:
        keys.append(f"`ecoctl token {name}`")
    return ".env: " + ", ".join(keys)


def endpoints(workspace, not_run: dict[str, str] | None = None) -> dict[str, str]:
    """Core pieces and their addresses; what the runtime does not run (`not_run`) is left out."""
    core = workspace.ecosystem.core
    found = {"postgres": f"postgresql://{workspace.postgres.address}" if core.postgres.external
             else f"postgresql://127.0.0.1:{core.postgres.port}"}
    if workspace.ecosystem.authentik_used:
        found["authentik"] = workspace.ecosystem.authentik_url
    elif "signin" not in (not_run or {}):
        found["signin"] = workspace.ecosystem.authentik_url
    if components.named("redis").enabled(workspace.ecosystem) and "redis" not in (not_run or {}):
        found["redis"] = f"redis://127.0.0.1:{core.redis.port}"
    if core.monitoring.enabled and "prometheus" not in (not_run or {}):
        found["prometheus"] = workspace.prometheus_url
    if components.ALERTMANAGER.enabled(workspace.ecosystem) and "alertmanager" not in (not_run or {}):
        found["alertmanager"] = f"http://127.0.0.1:{core.monitoring.alertmanager.port}"
    edge = components.named("edge")
    if edge is not None and edge.enabled(workspace.ecosystem) and "edge" not in (not_run or {}):
        found["edge"] = f"{workspace.ecosystem.edge_url()}/"
        found["sign-in"] = f"{workspace.ecosystem.sign_in_origin}/"
    return found


def stage_label(runtime, stage: str) -> str:
    """What `up` shows while a stage of the catalog starts: its components ("redis and authentik")."""
    shown = dict.fromkeys(component.shown_as for component in runtime.stage(stage))
    return " and ".join(shown) or f"{stage} components"


def up(workspace, stage: Stage | None = None, progress: Callable[[str], None] | None = None,
       on_demand: bool = False, health_timeout: float = 180.0, verbose: bool = False,
       adopt: bool = False, init_swarm: bool = False) -> UpResult:
    """Bring the stack up; `on_demand` also starts what runs only when asked (Grafana), and
    `init_swarm` lets the swarm runtime make this engine a single-node swarm."""
    stage = stage or (lambda name: None)
    runtime = get_runtime(workspace, progress)
    runtime.preflight(init_swarm=init_swarm)  # before any stage: a swarm to deploy on
    runtime.verbose = verbose  # docker: stream the image builder's output
    systems = systems_used(workspace.ecosystem)
    result = UpResult(runtime=workspace.ecosystem.runtime)
    names = [name for name, spec in workspace.ecosystem.services.items() if spec.pattern != "external"]

    def converge_stage(only: set[str]) -> None:
        done = converge(workspace, only=only & systems, options=Options(adopt=adopt))
        result.applied += done.changes
        result.pending.update(done.pending)

    stage("files")
    converge_stage({"files", "compose"})
    stage("postgres")
    if runtime.start_postgres():
        result.started.append("postgres")
    stage("databases and roles")
    converge_stage({"postgres"})
    result.notes += _postgres_version_note(workspace)
    stage(stage_label(runtime, "core"))
    if runtime.start_core():
        result.started.append("core")
    if "authentik" in systems:
        stage("authentik readiness")
        from ecoctl.clients.authentik import wait_for_authentik

        report = (lambda missing, elapsed: missing and progress(
            f"waiting for Authentik: {', '.join(missing)}")) if progress else None
        wait_for_authentik(workspace, on_progress=report)
        stage("oidc applications")
        converge_stage({"authentik"})
    stage("services")
    if runtime.start_services(names):
        result.started.append("services")
    if components.enabled(workspace.ecosystem, "monitoring"):
        stage("monitoring")
        converge_stage({"prometheus", "grafana"})  # their files first: each program reads them as it starts
        if runtime.start_monitoring(on_demand=on_demand):
            result.started.append("monitoring")
    stage("health")
    not_run = runtime.not_run()
    names = [name for name in names if name not in not_run]  # an optional service this host cannot build
    health = runtime.wait_healthy(names, timeout=health_timeout)
    result.endpoints = endpoints(workspace, not_run)
    result.notes += [f"{component} is not running: {why}" for component, why in not_run.items()]
    result.services = [ServiceSummary(name, runtime.service_url(name), health.get(name, "unknown"),
                                      credentials_hint(workspace, name, not_run)) for name in names]
    failures = {name: state for name, state in health.items() if state != "healthy"}
    if failures:
        raise UnhealthyServices(failures, {name: _last_lines(runtime, name) for name in failures})
    return result


def _postgres_version_note(workspace) -> list[str]:
    """A warning when the server that runs is not the version ecosystem.yaml names."""
    from ecoctl.clients.postgres import connect

    if not workspace.ecosystem.in_containers or workspace.ecosystem.core.postgres.external:
        return []
    try:
        with connect(workspace.postgres) as conn:
            running = conn.execute("show server_version").fetchone()[0]
    except EcoctlError:
        return []  # the postgres stage says why
    differs = workspace.ecosystem.postgres_version_differs(running)
    return [f"warning: {differs}"] if differs else []


def _last_lines(runtime, name: str) -> list[str]:
    try:
        return list(runtime.logs(name, tail=20))
    except EcoctlError as exc:
        return [f"(no logs: {exc})"]


def down(workspace, remove_volumes: bool = False, progress=None) -> bool:
    return get_runtime(workspace, progress).stop(remove_volumes=remove_volumes)


@dataclass
class StatusReport:
    runtime: str
    components: list[ComponentStatus]
    drift: list[Change]
    pending: dict[str, str]
    running: bool = True
    compared: list[str] = field(default_factory=list)
    """The systems whose drift was read (only the files while the stack is down)."""
    alerts: list[dict] | None = None
    """The alerts Prometheus has firing (name, service, severity, since, summary); None when no
    Prometheus of the ecosystem answers."""

    @property
    def failed(self) -> list[str]:
        """The components that failed (swarm gave up on them, or they exited): never "up"."""
        return [component.name for component in self.components if component.state == "failed"]

    def to_json(self) -> dict:
        return {"runtime": self.runtime, "running": self.running,
                "components": [c.to_json() for c in self.components],
                "compared": self.compared,
                "drift": [change.to_json() for change in self.drift],
                "pending": pending_json(self.pending), "alerts": self.alerts}


OFFLINE_SYSTEMS = {"files", "compose"}
"""What can be compared while the stack is down (the rest answers only when it runs)."""


def status(workspace) -> StatusReport:
    from ecoctl.commands.data_layer import with_details

    runtime = get_runtime(workspace)
    components = runtime.status()
    try:
        running = runtime.is_running()
    except EcoctlError:
        running = False
    components = with_details(workspace, components)
    used = systems_used(workspace.ecosystem)
    external_servers = workspace.ecosystem.core.postgres.external is not None
    offline = OFFLINE_SYSTEMS | (set() if workspace.ecosystem.authentik_in_stack else {"authentik"})
    only = None if running or external_servers else offline & used
    plan = plan_workspace(workspace, only=only)
    compared = sorted(only if only is not None else used)
    alerts = None
    if running and workspace.ecosystem.core.monitoring.enabled:
        from ecoctl.clients import prometheus

        alerts = prometheus.firing_alerts(workspace.prometheus_url)
    return StatusReport(workspace.ecosystem.runtime, components, plan.changes, plan.pending, running, compared,
                        alerts)
