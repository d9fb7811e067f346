"""Health, status and logs of the docker runtime's containers (read with the Docker SDK)."""

from __future__ import annotations

import time
from typing import Iterator

from ecoctl.errors import UsageError
from ecoctl.runtimes.base import ComponentStatus, url_of

RESTARTS_BEFORE_FAILED = 3


class DockerHealth:
    """Mixed into DockerRuntime: health waits, `status` and `logs`."""

    def wait_healthy(self, names: list[str], timeout: float) -> dict[str, str]:
        """Service -> "healthy", or why not: "unhealthy", "restarting", "exited (1)", "absent",
        "starting" (still, at the deadline). Services with pattern `external` are not ours to check."""
        services = self.workspace.ecosystem.services
        pending = [name for name in names if name in services and services[name].pattern != "external"]
        health: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while True:
            containers = self.containers()
            for name in list(pending):
                state, final = self._service_health(name, containers.get(name))
                health[name] = state
                if final:
                    pending.remove(name)
            if not pending or time.monotonic() >= deadline:
                return health
            self.progress("waiting for " + ", ".join(f"{name} ({health[name]})" for name in pending))
            time.sleep(1.0)

    def _service_health(self, name: str, container) -> tuple[str, bool]:
        """(health, whether it is final) of one service's container."""
        if container is None:
            return "absent", False
        container.reload()
        state = container.attrs.get("State", {})
        status = state.get("Status", "unknown")
        if status == "exited" or status == "dead":
            return f"exited ({state.get('ExitCode')})", True
        check = (state.get("Health") or {}).get("Status")
        if status == "running" and check is None:  # no healthcheck in the image: ask the service
            check = "healthy" if _http_ok(f"{self.service_url(name)}/healthz") else "starting"
        if status == "running" and check in ("healthy", "unhealthy"):
            return check, True
        if status == "restarting" or container.attrs.get("RestartCount", 0) >= RESTARTS_BEFORE_FAILED:
            # A crash loop: final once it has restarted a few times, whatever it does meanwhile.
            return "restarting", container.attrs.get("RestartCount", 0) >= RESTARTS_BEFORE_FAILED
        return ("starting" if status == "running" else status), False

    def expected_components(self) -> list[str]:
        services = self.workspace.ecosystem.services
        return self.core_components() + [name for name, spec in services.items() if spec.pattern != "external"]

    def status(self) -> list[ComponentStatus]:
        from ecoctl.runtimes.external import with_external_authentik

        containers = self.containers()
        names = self.expected_components()
        names += sorted(name for name in containers if name not in names)
        components = [ComponentStatus(name, "absent", "unknown") if containers.get(name) is None
                      else self._component(name, containers[name]) for name in names]
        return with_external_authentik(components, self.workspace.ecosystem)

    def _component(self, name: str, container) -> ComponentStatus:
        state = container.attrs.get("State", {})
        status = state.get("Status", "unknown")
        exit_code = state.get("ExitCode", 0)
        if status == "running":
            kind = "running"
        elif status == "restarting" or (status in ("exited", "dead") and exit_code):
            kind = "failed"
        else:
            kind = "stopped"
        health = (state.get("Health") or {}).get("Status") or ("none" if kind == "running" else "unknown")
        detail = container.attrs.get("Config", {}).get("Image", "")
        if kind != "running":
            detail = f"{status} (exit {exit_code}); {detail}"
        return ComponentStatus(name, kind, health, _published_url(name, container), detail)

    def log_names(self) -> list[str]:
        """What `logs` takes: what runs, and what runs on demand."""
        return self.expected_components() + self.started_on_demand()

    def logs(self, component: str, follow: bool = False, tail: int = 100) -> Iterator[str]:
        """The container's log lines (stdout and stderr); nothing when it has no container."""
        if component not in self.log_names():
            known = ", ".join(self.expected_components())
            raise UsageError(f"no component {component!r} in this ecosystem: use one of {known}")
        container = self.containers().get(component)
        if container is None:
            return iter(())
        return self._log_lines(container, follow, tail)

    @staticmethod
    def _log_lines(container, follow: bool, tail: int) -> Iterator[str]:
        if not follow:
            text = container.logs(tail=tail).decode(errors="replace")
            yield from text.splitlines()
            return
        pending = ""
        for chunk in container.logs(stream=True, follow=True, tail=tail):
            pending += chunk.decode(errors="replace")
            *lines, pending = pending.split("\n")
            yield from (line.rstrip("\r") for line in lines)
        if pending:
            yield pending


def _published_url(name: str, container) -> str | None:
    ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for bindings in ports.values():
        for binding in bindings or []:
            if binding.get("HostPort"):
                host = binding.get("HostIp") or "127.0.0.1"
                host = "127.0.0.1" if host in ("0.0.0.0", "") else host
                host = f"[{host}]" if ":" in host else host
                return url_of(name, host, binding["HostPort"])
    return None


def _http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


