"""The swarm runtime: the ecosystem as one Docker Swarm stack named after it.

`up` builds each service's image (swarm ignores `build:`; the tag is the image id, so an unchanged
service is not rolled), creates the Docker secrets the stack mounts, renders `.ecoctl/swarm/stack.yaml`
(see swarm_stack.py) and deploys it stage by stage with `docker stack deploy` (no `--prune`: a stage
adds its components and leaves the others running). The Docker SDK reads services and tasks: a task is
`running` only once its healthcheck passed, so "healthy" means every desired replica is running.

ecoctl never creates a swarm silently: `up --init-swarm` makes this engine a single-node swarm and records
it in `.ecoctl/swarm/initialised`; only such a swarm is left again (`down --volumes`, when nothing else runs on it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

from ecoctl.clients.docker import EngineConnection
from ecoctl.errors import EcoctlError, UsageError
from ecoctl.runtimes.base import Runtime
from ecoctl.runtimes.swarm_asked import SwarmAsked
from ecoctl.runtimes.swarm_health import SwarmHealth, rejection_hint, start_refused
from ecoctl.runtimes.swarm_images import SwarmImages
from ecoctl.runtimes.swarm_secrets import SwarmSecrets
from ecoctl.runtimes.swarm_stack import EDGE_SUFFIX, render

STACK_LABEL = "com.docker.stack.namespace"
CORE_WAIT = 300.0


def not_a_swarm_error() -> EcoctlError:
    return EcoctlError("this Docker engine is not in a swarm: run `ecoctl up --init-swarm` to make it a "
                       "single-node swarm, or `docker swarm join` it to yours")


class SwarmRuntime(EngineConnection, SwarmHealth, SwarmImages, SwarmSecrets, SwarmAsked, Runtime):
    name = "swarm"
    verbose = False
    """Show the output of `docker build` and `docker stack deploy` (it always goes to .ecoctl/logs/)."""

    def __init__(self, workspace, progress=None):
        super().__init__(workspace, progress)
        self._node: str | None = None

    # -- engine, swarm ------------------------------------------------------------------------------

    @property
    def stack(self) -> str:
        return self.workspace.ecosystem.name

    @property
    def state_dir(self):
        return self.workspace.state_dir / "swarm"

    @property
    def init_record(self):
        return self.state_dir / "initialised"

    def swarm_info(self) -> dict:
        return self.client.info().get("Swarm") or {}

    def swarm_active(self) -> bool:
        return self.swarm_info().get("LocalNodeState") == "active"

    def ensure_swarm(self, init: bool = False) -> bool:
        """A manager node to deploy on; with `init`, make this engine a single-node swarm. True if it did."""
        info = self.swarm_info()
        if info.get("LocalNodeState") == "active":
            if not info.get("ControlAvailable"):
                raise EcoctlError("this Docker engine is a swarm worker, not a manager: run ecoctl against a "
                                  "manager node (DOCKER_HOST or a docker context)")
            return False
        if info.get("LocalNodeState") not in (None, "inactive"):
            raise EcoctlError(f"this engine's swarm is {info.get('LocalNodeState')}: fix it with `docker swarm` "
                              "first (ecoctl does not change a swarm it did not create)")
        if not init:
            raise not_a_swarm_error()
        self.progress("docker swarm init --advertise-addr 127.0.0.1")
        node_id = self.client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.init_record.write_text(json.dumps({"node_id": node_id or self.swarm_info().get("NodeID")}) + "\n")
        return True

    def _we_initialised(self) -> bool:
        if not self.init_record.is_file():
            return False
        try:
            recorded = json.loads(self.init_record.read_text()).get("node_id")
        except ValueError:
            return False
        return bool(recorded) and recorded == self.swarm_info().get("NodeID")

    @property
    def node(self) -> str:
        """This node's hostname: where stateful pieces (and their volumes) stay."""
        if self._node is None:
            node_id = self.swarm_info().get("NodeID")
            self._node = self.client.nodes.get(node_id).attrs["Description"]["Hostname"]
        return self._node

    @property
    def log_dir(self):
        return self.workspace.state_dir / "logs"

    def docker(self, *args: str, timeout: float = 600.0) -> str:
        """Run the docker CLI; its output goes to .ecoctl/logs/swarm-deploy.log (and to `progress`
        when verbose, or when it failed)."""
        docker = shutil.which("docker")
        if not docker:
            raise EcoctlError("the docker CLI is not on PATH (swarm deploys use `docker stack deploy`): "
                              "install docker.io or docker-ce-cli")
        shown = "docker " + " ".join(args)
        self.progress(shown)
        done = subprocess.run([docker, *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=self.workspace.root)
        lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / "swarm-deploy.log", "a") as log:
            log.write("".join(f"{line}\n" for line in [f"$ {shown}", *lines]))
        for line in lines if self.verbose or done.returncode else []:
            self.progress(line)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()] or [f"exit status {done.returncode}"]
            raise EcoctlError(f"`{shown}` failed: {lines[-1][:300]}")
        return done.stdout

    # -- deploying ------------------------------------------------------------------------------

    def deploy(self, components: set[str]) -> bool:
        """Deploy these components (core keys, service names); True when a service was created or changed."""
        self.ensure_swarm(init=False)
        ecosystem = self.workspace.ecosystem
        images = {name: self.image_for(name) for name in components
                  if name in ecosystem.services and ecosystem.services[name].pattern != "external"}
        components = set(components) | (set(self.write_container_configs()) & set(self.services()))
        document, secrets = render(self.workspace, components, images, self.node)
        if not document["services"]:
            return False
        self.ensure_secrets(secrets)
        path = self.write_stack(document)
        before = {name: service.attrs["Spec"] for name, service in self.services().items()}
        resolve = ["--with-registry-auth", "--resolve-image", "changed"] if ecosystem.registry \
            else ["--resolve-image", "never"]
        self.docker("stack", "deploy", "--compose-file", str(path), *resolve, self.stack)
        self.prune_services()
        after = self.services()
        self.prune_secrets()
        return any(before.get(key) != after[key].attrs["Spec"] for key in document["services"] if key in after)

    def write_stack(self, document: dict):
        """The stack file last deployed, merged with earlier stages' (for users to inspect or redeploy)."""
        from ecoctl.support.atomic import write_atomic

        path = self.state_dir / "stack.yaml"
        merged = document
        if path.is_file():
            try:
                previous = json.loads(path.read_text())
            except ValueError:
                previous = {}
            merged = dict(document)
            for section in ("services", "volumes", "secrets", "configs", "networks"):
                combined = {**(previous.get(section) or {}), **(document.get(section) or {})}
                if combined:
                    merged[section] = combined
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.state_dir / "deploy.yaml", json.dumps(document, indent=2) + "\n")
        write_atomic(path, json.dumps(merged, indent=2) + "\n")  # JSON is YAML: `docker stack deploy -c` reads it
        return self.state_dir / "deploy.yaml"

    def declared(self) -> set[str]:
        """The stack components this ecosystem declares (those started on demand included)."""
        return set(self.expected_components()) | set(self.started_on_demand())

    def prune_services(self) -> None:
        """Remove the stack's services the ecosystem no longer declares (Authentik, once it is an
        external one; a removed service), from the swarm and from stack.yaml."""
        declared = self.declared()
        for key, service in self.services().items():
            if key not in declared:
                self.progress(f"removing swarm service {service.name} (no longer in ecosystem.yaml)")
                service.remove()
        self._forget_undeclared(declared)

    def _forget_undeclared(self, declared: set[str]) -> None:
        from ecoctl.support.atomic import write_atomic

        path = self.state_dir / "stack.yaml"
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        services = document.get("services") or {}
        if set(services) - declared:
            document["services"] = {key: entry for key, entry in services.items() if key in declared}
            write_atomic(path, json.dumps(document, indent=2) + "\n")

    def services(self) -> dict[str, object]:
        """Stack component name (`postgres`, `portfolio`, `portfolio_edge`) -> swarm service."""
        if not self.swarm_active():
            return {}
        prefix = f"{self.stack}_"
        return {service.name[len(prefix):]: service
                for service in self.client.services.list(filters={"label": f"{STACK_LABEL}={self.stack}"})
                if service.name.startswith(prefix)}

    @staticmethod
    def _tasks(service) -> list[dict]:
        return service.tasks()

    @staticmethod
    def _wanted(service) -> int:
        mode = service.attrs["Spec"].get("Mode") or {}
        return (mode.get("Replicated") or {}).get("Replicas", 1) if "Replicated" in mode else 1

    def _wait_core(self, keys: list[str], started_only: bool = False) -> None:
        health = self.wait_for(keys, CORE_WAIT, started_only=started_only)
        failing = {key: state for key, state in health.items() if state not in ("healthy", "started")}
        if failing:
            key, state = next(iter(failing.items()))
            if cause := start_refused(state):
                raise EcoctlError(f"swarm cannot start {key}: {cause}: {rejection_hint(cause)}")
            raise EcoctlError(f"{key} is not healthy in the swarm stack ({state}): see `ecoctl logs {key}`")

    # -- stages ---------------------------------------------------------------------------------

    def runs(self, component) -> bool:
        return component.container is not None

    def _deploy_stage(self, stage: str, on_demand: bool = False) -> bool:
        """Deploy the stage's components; wait for those it waits for (Authentik's readiness is
        waited for through its API by the caller)."""
        chosen = self.stage(stage, on_demand)
        if not chosen:
            return False
        changed = self.deploy({component.name for component in chosen})
        self._wait_core([component.name for component in chosen if component.wait])
        self._wait_core([component.name for component in chosen if not component.wait], started_only=True)
        return changed

    def start_postgres(self) -> bool:
        self.ensure_swarm(init=False)
        return self._deploy_stage("postgres")

    def start_core(self) -> bool:
        return self._deploy_stage("core")

    def start_services(self, names: list[str]) -> bool:
        from ecoctl.template_run import with_core_services

        services = self.workspace.ecosystem.services
        wanted = with_core_services(self.workspace, names)
        missing = [name for name in wanted if name not in services]
        if missing:
            raise UsageError(f"unknown service {missing[0]!r}: add it with `ecoctl add-service {missing[0]}`")
        return self.deploy({name for name in wanted if services[name].pattern != "external"})

    def start_monitoring(self, on_demand: bool = False) -> bool:
        return self._deploy_stage("monitoring", on_demand)

    def wait_healthy(self, names: list[str], timeout: float) -> dict[str, str]:
        """The services' health, and that of any core component swarm gave up on (a failed one is
        never "up")."""
        services = self.workspace.ecosystem.services
        keys = [name for name in names if name in services and services[name].pattern != "external"]
        health = self.wait_for(keys, timeout)
        core = self.wait_for([key for key in self.services() if key not in health], 0)
        return {**health, **{key: state for key, state in core.items()
                             if state.startswith(("failing", "rejected", "rolled back"))}}

    # -- stopping -------------------------------------------------------------------------------

    def stop(self, remove_volumes: bool = False) -> bool:
        had = bool(self.services())
        if had:
            self.docker("stack", "rm", self.stack)
            self._wait_gone()
        if self.swarm_active():
            self.prune_secrets(keep=set())
        removed_volumes = self._remove_volumes() if remove_volumes else False
        if remove_volumes and self._we_initialised() and not self.client.services.list():
            self.progress("docker swarm leave --force (ecoctl initialised this swarm; nothing else runs on it)")
            self.client.swarm.leave(force=True)
            self.init_record.unlink(missing_ok=True)
        return had or removed_volumes

    def _wait_gone(self, timeout: float = 120.0) -> None:
        """`docker stack rm` returns at once; containers and the network go a little later."""
        from docker.errors import NotFound

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:  # sparse: no inspect of each container, which may be gone by then
                containers = self.client.containers.list(all=True, sparse=True,
                                                         filters={"label": f"{STACK_LABEL}={self.stack}"})
                networks = self.client.networks.list(filters={"label": f"{STACK_LABEL}={self.stack}"})
            except NotFound:
                containers = networks = [None]
            if not containers and not networks and not self.services():
                return
            time.sleep(0.5)
        raise EcoctlError(f"the {self.stack} stack's containers did not stop within {timeout:.0f}s: "
                          "check `docker stack ps` and retry `ecoctl down`")

    def _remove_volumes(self) -> bool:
        from docker.errors import APIError, NotFound

        volumes = self.client.volumes.list(filters={"label": f"{STACK_LABEL}={self.stack}"})
        for volume in volumes:
            for attempt in range(20):  # a container that just stopped may hold it for a moment
                try:
                    volume.remove()
                    break
                except NotFound:
                    break
                except APIError:
                    if attempt == 19:
                        raise EcoctlError(f"volume {volume.name} is still in use: stop what uses it and "
                                          "run `ecoctl down --volumes` again") from None
                    time.sleep(0.5)
        return bool(volumes)

    def reload_prometheus(self) -> bool:
        """SIGHUP to the stack's Prometheus task (it runs without the lifecycle API, as in the docker
        runtime), then wait until it reports a newer successful reload; False when none answers."""
        from ecoctl.clients import prometheus

        url = self.workspace.prometheus_url
        try:
            before = prometheus.reload_state(url)
        except EcoctlError:
            return False
        tasks = self.client.containers.list(
            filters={"label": f"com.docker.swarm.service.name={self.stack}_prometheus"})
        if not tasks:
            return False
        for container in tasks:
            container.kill(signal="SIGHUP")
        prometheus.wait_reloaded(url, before)
        from ecoctl import components

        for component in components.reloaded_with_prometheus(self.workspace.ecosystem):
            for container in self.client.containers.list(  # its file is written with Prometheus's
                    filters={"label": f"com.docker.swarm.service.name={self.stack}_{component.name}"}):
                container.kill(signal=f"SIG{component.local.reload_signal}")
        return True

    def restart_service(self, name: str, timeout: float = 120.0) -> str:
        """A rolling restart (start-first): every replica again, reading its secrets anew."""
        service = self.services().get(name)
        if service is None:
            raise EcoctlError(f"{name} is not deployed in stack {self.stack}: run `ecoctl up`")
        service.force_update()
        return self.wait_for([name], timeout)[name]

    def postgres_tool(self, server_major: int):
        """The tools inside the stack's running PostgreSQL task (`docker exec -i`): its own version."""
        database = self.stage("postgres")
        if not database:  # an external server: a client on this host
            return super().postgres_tool(server_major)
        from ecoctl.runtimes.postgres_tools import container_tool

        service = f"{self.stack}_{database[0].name}"
        tasks = self.client.containers.list(filters={"label": f"com.docker.swarm.service.name={service}",
                                                     "status": "running"})
        if not tasks:
            raise EcoctlError(f"no running task of {service} on this node: run `ecoctl up`, or run the "
                              "command on the node that holds PostgreSQL's volume")
        return container_tool([shutil.which("docker") or "docker", "exec", "-i", tasks[0].id],
                              self.workspace.postgres.user, f"the {service} task")

    def stop_service(self, name: str) -> bool:
        removed = False
        for key in (name, name + EDGE_SUFFIX):
            service = self.services().get(key)
            if service is not None:
                self.progress(f"removing swarm service {service.name}")
                service.remove()
                removed = True
        return removed

    # -- status and logs ------------------------------------------------------------------------

    def is_running(self) -> bool:
        """Whether the database stage runs (anything at all, with an external database)."""
        services = self.services()
        first = [component.name for component in self.stage("postgres")]
        if not first:
            return bool(services)
        return all(name in services and any(task["Status"]["State"] == "running"
                                            for task in self._tasks(services[name])) for name in first)

    def expected_components(self) -> list[str]:
        names = self.core_components()
        for name, spec in self.workspace.ecosystem.services.items():
            if spec.pattern != "external":
                names += [name, name + EDGE_SUFFIX]
        return names
