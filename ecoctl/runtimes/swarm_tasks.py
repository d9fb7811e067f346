"""Commands run inside the stack's running tasks on this node: a core component's reload (the
pooler reading its userlist again), as `docker exec` would."""

from __future__ import annotations

from ecoctl import components
from ecoctl.errors import EcoctlError


class SwarmTasks:
    """Mixed into SwarmRuntime (needs `client` and `stack`)."""

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
