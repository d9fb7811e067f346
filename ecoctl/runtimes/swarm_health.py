"""Health, status and logs of a deployed swarm stack: replicas running and healthy per service."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Iterator

from ecoctl.errors import UsageError
from ecoctl.runtimes.base import ComponentStatus, url_of

FAILED_TASKS_BEFORE_FINAL = 3
ROLLBACK_STATES = ("rollback_started", "rollback_paused", "rollback_completed", "paused")
STARTED_STATES = ("starting", "running")
"""A task past these has its image and a node: what is left is its own start (and health check)."""


def rejection(tasks: list[dict], image: str) -> str | None:
    """Why swarm cannot even start IMAGE's tasks (no such image, no suitable node), else None:
    retrying will not help, so waiting for them is pointless."""
    own = [task for task in tasks if task["Spec"]["ContainerSpec"]["Image"].split("@", 1)[0] == image]
    if not own:
        return None
    status = max(own, key=lambda task: (task.get("Version") or {}).get("Index", 0))["Status"]  # the latest try
    if status["State"] == "rejected" or (status["State"] == "pending" and status.get("Err")):
        return " ".join((status.get("Err") or status.get("Message") or status["State"]).split())
    return None


def start_refused(state: str) -> str | None:
    """The cause, when a component's state says swarm cannot start its task at all: rejected, or
    failing for a cause no retry mends (the image is not on the node, no node fits); which of the
    two Docker reports first depends on timing. None: any other state."""
    kind, _, cause = state.partition(": ")
    if kind == "rejected" or (kind == "failing" and any(
            words in cause.lower() for words in ("no such image", "no suitable node"))):
        return cause
    return None


def rejection_hint(cause: str) -> str:
    """What to do about a rejected task."""
    if "no such image" in cause.lower():
        return ("`docker pull` it on every node, or set `images:` in ecosystem.yaml to one this host has "
                "(`ecoctl doctor` lists the images)")
    if "no suitable node" in cause.lower():
        return "check `docker node ls` and the service's placement (node labels, resources)"
    return "check `docker service ps --no-trunc` for the stack"


class SwarmHealth:
    """Mixed into SwarmRuntime: reads tasks and services to tell health, status and logs."""

    def health_of(self, key: str, service, desired_image: str | None = None) -> tuple[str, bool]:
        """(health, whether final) of one component: "healthy" once every desired replica runs."""
        if service is None:
            return "absent", False
        service.reload()
        wanted = self._wanted(service)
        update = service.attrs.get("UpdateStatus") or {}
        image = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].split("@", 1)[0]
        tasks = self._tasks(service)
        running = [task for task in tasks if task.get("DesiredState") == "running"
                   and task["Status"]["State"] == "running"]
        state = update.get("State")
        if state in ROLLBACK_STATES and desired_image and image != desired_image:
            message = " ".join((update.get("Message") or "update failed").split())
            final = state != "rollback_started"
            return f"rolled back: {message}", final
        if state == "updating":
            return f"updating ({len(running)}/{wanted})", False
        if len(running) >= wanted:
            return "healthy", True
        if cause := rejection(tasks, image):
            return f"rejected: {cause}", True
        failed = [task for task in tasks if task["Status"]["State"] in ("failed", "rejected")
                  and task["Spec"]["ContainerSpec"]["Image"].split("@", 1)[0] == image]
        if len(failed) >= FAILED_TASKS_BEFORE_FINAL and not running:
            error = failed[0]["Status"].get("Err") or failed[0]["Status"].get("Message") or "failed"
            return f"failing: {error}", True
        return f"starting ({len(running)}/{wanted})", False

    def started_of(self, key: str, service, desired_image: str | None = None) -> tuple[str, bool]:
        """(health, whether final) of a component whose health is waited for elsewhere: final once
        a task started (its image found, on a node) or swarm rejected it."""
        health, final = self.health_of(key, service, desired_image)
        if final or service is None:
            return health, final
        started = any(task["Status"]["State"] in STARTED_STATES for task in self._tasks(service))
        return ("started" if started else health), started

    def wait_for(self, keys: list[str], timeout: float, started_only: bool = False) -> dict[str, str]:
        """Wait until each key's health is final (or, with STARTED_ONLY, its tasks started)."""
        look = self.started_of if started_only else self.health_of
        pending = list(keys)
        health: dict[str, str] = {}
        desired = self.desired_images()
        deadline = time.monotonic() + timeout
        while True:
            services = self.services()
            for key in list(pending):
                state, final = look(key, services.get(key), desired.get(key))
                health[key] = state
                if final:
                    pending.remove(key)
            if not pending or time.monotonic() >= deadline:
                return health
            self.progress("waiting for " + ", ".join(f"{key} ({health[key]})" for key in pending))
            time.sleep(1.0)

    def status(self) -> list[ComponentStatus]:
        from ecoctl.runtimes.external import with_external_authentik

        services = self.services()
        names = self.expected_components()
        names += sorted(name for name in services if name not in names)
        desired = self.desired_images()
        components = [self._component(name, services.get(name), desired.get(name)) for name in names]
        return with_external_authentik(components, self.workspace.ecosystem)

    def _component(self, name: str, service, desired_image: str | None) -> ComponentStatus:
        if service is None:
            return ComponentStatus(name, "absent", "unknown")
        health, _ = self.health_of(name, service, desired_image)
        wanted = self._wanted(service)
        tasks = self._tasks(service)
        running = [task for task in tasks if task.get("DesiredState") == "running"
                   and task["Status"]["State"] == "running"]
        replaced = [task for task in tasks if task["Status"]["State"] in ("failed", "rejected")]
        detail = f"{len(running)}/{wanted} replicas"
        if replaced:
            reason = replaced[0]["Status"].get("Err") or replaced[0]["Status"].get("Message") or "failed"
            detail += f"; {len(replaced)} failed task(s) replaced by swarm (last: {reason})"
        image = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].split("@", 1)[0]
        detail += f"; {image}"
        if health == "healthy":
            state = "running"
        elif running:
            state = "running"
        elif replaced or health.startswith("rejected"):
            state = "failed"
        else:
            state = "stopped"
        return ComponentStatus(name, state, health if health == "healthy" else health.split(" (")[0],
                               self._url(name, service), detail)

    def _url(self, name: str, service) -> str | None:
        ecosystem = self.workspace.ecosystem
        if name in ecosystem.services:
            return self.service_url(name)
        ports = (service.attrs["Spec"].get("EndpointSpec") or {}).get("Ports") or []
        for port in ports:
            if port.get("PublishedPort"):
                return url_of(name, "127.0.0.1", port["PublishedPort"])
        return None

    def logs(self, component: str, follow: bool = False, tail: int = 100) -> Iterator[str]:
        """Every replica's lines, each prefixed with its task (`docker service logs`)."""
        known = self.expected_components()
        if component not in known + self.started_on_demand():
            raise UsageError(f"no component {component!r} in this ecosystem: use one of {', '.join(known)}")
        if component not in self.services():
            return iter(())
        return self._log_lines(component, follow, tail)

    def _log_lines(self, component: str, follow: bool, tail: int) -> Iterator[str]:
        args = [shutil.which("docker") or "docker", "service", "logs", "--no-trunc", "--tail", str(tail)]
        if follow:
            args.append("--follow")
        process = subprocess.Popen([*args, f"{self.stack}_{component}"], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                                   errors="replace", env=os.environ.copy())
        try:
            assert process.stdout is not None
            for line in process.stdout:
                yield line.rstrip("\n")
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait()

