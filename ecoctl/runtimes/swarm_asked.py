"""What commands ask of the swarm runtime: doctor's checks, who holds a port, `up`'s preflight,
`scale`, rolling services onto a rotated secret, and a component's reload in its tasks here."""

from __future__ import annotations

import shutil

from ecoctl import components
from ecoctl.errors import EcoctlError, UsageError
from ecoctl.runtimes.base import Check
from ecoctl.runtimes.swarm_stack import EDGE_SUFFIX

ROLL_WAIT = 180.0


class SwarmAsked:
    """Mixed into SwarmRuntime."""

    rotation_done = "{}: replicas rolled onto the new secret."

    def preflight(self, init_swarm: bool = False) -> None:
        """A swarm manager to deploy on; with `init_swarm`, this engine made a single-node swarm
        unless it is in one already (never without)."""
        self.ensure_swarm(init=init_swarm)

    def doctor_checks(self) -> list[Check]:
        from ecoctl.runtimes import engine_checks

        engine, client = engine_checks.engine()
        checks = [engine]
        if client is None:
            return checks
        try:
            checks.append(_docker_cli())
            checks.append(_swarm_state(client.info().get("Swarm") or {}))
            ecosystem = self.workspace.ecosystem
            wanted = engine_checks.image_names(ecosystem, self.components())
            wanted.append(ecosystem.image("python"))  # each service's edge runs it
            checks.append(engine_checks.images(client, list(dict.fromkeys(wanted))))
        finally:
            client.close()
        return checks

    def holds_port(self, name: str, port: int) -> bool:
        """A stack service of NAME (or its edge, which publishes a service's port) publishes PORT."""
        services = self.services()
        for key in (name, name + EDGE_SUFFIX):
            service = services.get(key)
            published = ((service.attrs["Spec"].get("EndpointSpec") or {}).get("Ports") or []) if service else []
            if any(entry.get("PublishedPort") == port for entry in published):
                return True
        return False

    def after_secret_rotated(self, names: list[str]) -> dict[str, str] | None:
        """A new versioned Docker secret, and each of NAMES the stack runs rolled onto it
        (start-first, so it keeps answering); None when the stack runs none of them."""
        deployed = [name for name in names if name in self.services()]
        if not deployed:
            return None
        self.deploy(set(deployed))
        return self.wait_for(deployed, ROLL_WAIT)

    def replicas_key(self, name: str) -> tuple[str, ...]:
        ecosystem = self.workspace.ecosystem
        component = components.named(name)
        if component is not None and component.replicas:
            if not component.enabled(ecosystem):
                from ecoctl.compose_core import left_out

                why = left_out(ecosystem, component) or "it is not enabled"
                raise UsageError(f"{name} does not run in this ecosystem's stack ({why}): nothing to scale")
            return tuple(component.replicas.split("."))
        spec = ecosystem.services.get(name)
        if spec is not None and spec.pattern != "external":
            return ("services", name, "replicas")
        choices = [service for service, spec in ecosystem.services.items() if spec.pattern != "external"]
        choices += [component.name for component in components.enabled(ecosystem) if component.replicas]
        raise UsageError(f"cannot scale {name!r}: use one of {', '.join(choices)} (the other core "
                         "components run one replica, pinned to their volume)")

    def scale(self, name: str, replicas: int, timeout: float = 180.0) -> str | None:
        service = self.services().get(name)
        if service is None:
            return None
        self.progress(f"scaling {name} to {replicas}")
        service.scale(replicas)
        return self.wait_for([name], timeout)[name]


    def reload_component(self, name: str) -> bool:
        """Its reload command run in each of its running tasks here; False when none runs here (a
        task started later reads the files when it starts)."""
        component = components.named(name)
        if component is None or component.container is None or not component.container.reload:
            return False
        tasks = self.client.containers.list(
            filters={"label": f"com.docker.swarm.service.name={self.stack}_{name}", "status": "running"})
        for task in tasks:
            code, output = task.exec_run(list(component.container.reload))
            if code != 0:
                last = (output or b"").decode(errors="replace").strip().splitlines() or ["no output"]
                raise EcoctlError(f"{name} did not reload: {last[-1]} (`ecoctl logs {name}` shows more)")
        return bool(tasks)


def _docker_cli() -> Check:
    docker = shutil.which("docker")
    if docker:
        return Check("docker cli", "ok", f"{docker} deploys the stack (`docker stack deploy`)")
    return Check("docker cli", "fail", "the docker CLI is not on PATH (swarm deploys use `docker stack deploy`)",
                 "install docker.io or docker-ce-cli")


def _swarm_state(info: dict) -> Check:
    state = info.get("LocalNodeState") or "inactive"
    if state == "active" and info.get("ControlAvailable"):
        return Check("swarm", "ok", f"this engine is a swarm manager (node {info.get('NodeID', '?')[:12]})")
    if state == "active":
        return Check("swarm", "fail", "this engine is a swarm worker, not a manager",
                     "run ecoctl against a manager node (DOCKER_HOST or a docker context)")
    if state == "inactive":
        return Check("swarm", "warn", "this engine is in no swarm: `ecoctl up` stops at once",
                     "`ecoctl up --init-swarm` makes it a single-node swarm, or `docker swarm join` it to yours")
    return Check("swarm", "fail", f"this engine's swarm is {state}",
                 "fix it with `docker swarm` first (ecoctl does not change a swarm it did not create)")
