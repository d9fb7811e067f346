"""The images a swarm stack runs: built locally (swarm ignores `build:`), tagged by image id so an
unchanged service is not restarted, and pushed to `registry:` when several nodes must pull them."""

from __future__ import annotations

import json

from ecoctl.clients.docker import build_image
from ecoctl.errors import EcoctlError


class SwarmImages:
    """Mixed into SwarmRuntime: build (and push) each service's image."""

    def image_for(self, name: str) -> str:
        """Build services/NAME (its template's build args, with BuildKit as compose builds), tag it by
        its id, push with `registry:`."""
        from ecoctl.template_run import docker_build_args

        context = self.workspace.root / "services" / name
        if not (context / "Dockerfile").is_file():
            raise EcoctlError(f"services/{name}/Dockerfile is missing: run `ecoctl apply` (or add one)")
        ecosystem = self.workspace.ecosystem
        self.progress(f"building services/{name}")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / "swarm-build.log"
        tag = f"{ecosystem.name}/{name}:build"  # untagged once the image carries its id's tag
        with open(log_path, "a") as log:
            log.write(f"$ docker build services/{name}\n")

            def on_line(line: str) -> None:
                log.write(line + "\n")
                if self.verbose:
                    self.progress(line)

            try:
                build_image(context, docker_build_args(self.workspace, name), tag, on_line)
            except EcoctlError as exc:
                raise EcoctlError(f"{exc}: its output is in {log_path}") from None
        image = self.client.images.get(tag)
        short = image.id.split(":", 1)[-1][:12]
        repository = f"{ecosystem.name}/{name}"
        if ecosystem.registry:
            repository = f"{ecosystem.registry.rstrip('/')}/{repository}"
        image.tag(repository, short)
        self.client.images.remove(tag, noprune=True)
        tag = f"{repository}:{short}"
        if ecosystem.registry:
            self.progress(f"pushing {tag}")
            for chunk in self.client.images.push(repository, short, stream=True, decode=True):
                if "error" in chunk:
                    raise EcoctlError(f"pushing {tag} to {ecosystem.registry} failed: {chunk['error'][:200]}: "
                                      "check `registry:` and `docker login`")
        return tag

    def desired_images(self) -> dict[str, str]:
        path = self.state_dir / "stack.yaml"
        try:
            services = json.loads(path.read_text()).get("services") or {}
        except (OSError, ValueError):
            return {}
        return {name: entry.get("image") for name, entry in services.items()}

    # -- reading the stack ----------------------------------------------------------------------

