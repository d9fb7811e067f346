"""The images a swarm stack runs: built locally (swarm ignores `build:`), tagged by image id so an
unchanged service is not restarted, and pushed to `registry:` when several nodes must pull them."""

from __future__ import annotations

import json

from ecoctl.errors import EcoctlError


class SwarmImages:
    """Mixed into SwarmRuntime: build (and push) each service's image."""

    def image_for(self, name: str) -> str:
        """Build services/NAME (BASE_IMAGE from `images: python`), tag it by its id, push with `registry:`."""
        context = self.workspace.root / "services" / name
        if not (context / "Dockerfile").is_file():
            raise EcoctlError(f"services/{name}/Dockerfile is missing: run `ecoctl apply` (or add one)")
        ecosystem = self.workspace.ecosystem
        self.progress(f"building services/{name}")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / "swarm-build.log"
        with open(log_path, "a") as log:
            log.write(f"$ docker build services/{name}\n")
            image_id, last = self._build(name, context, log)
        if not image_id:
            raise EcoctlError(f"building services/{name} gave no image ({last[:200]}): its output is in {log_path}")
        image = self.client.images.get(image_id)
        short = image.id.split(":", 1)[-1][:12]
        repository = f"{ecosystem.name}/{name}"
        if ecosystem.registry:
            repository = f"{ecosystem.registry.rstrip('/')}/{repository}"
        image.tag(repository, short)
        tag = f"{repository}:{short}"
        if ecosystem.registry:
            self.progress(f"pushing {tag}")
            for chunk in self.client.images.push(repository, short, stream=True, decode=True):
                if "error" in chunk:
                    raise EcoctlError(f"pushing {tag} to {ecosystem.registry} failed: {chunk['error'][:200]}: "
                                      "check `registry:` and `docker login`")
        return tag

    def _build(self, name: str, context, log) -> tuple[str | None, str]:
        """(image id, last line) of one `docker build`; its output goes to LOG (and to `progress`
        when verbose)."""
        image_id = None
        last = ""
        for chunk in self.client.api.build(path=str(context), rm=True, decode=True, pull=False,
                                           buildargs={"BASE_IMAGE": self.workspace.ecosystem.image("python")}):
            if "error" in chunk:
                error = " ".join(chunk["error"].split())
                log.write(error + "\n")
                raise EcoctlError(f"building services/{name} failed: {error[:300]}: its output is in {log.name}")
            if line := (chunk.get("stream") or "").strip():
                last = line
                log.write(line + "\n")
                if self.verbose:
                    self.progress(line)
                if line.startswith("Successfully built "):
                    image_id = line.split()[-1]
            if (chunk.get("aux") or {}).get("ID"):
                image_id = chunk["aux"]["ID"]
        return image_id, last

    def desired_images(self) -> dict[str, str]:
        path = self.state_dir / "stack.yaml"
        try:
            services = json.loads(path.read_text()).get("services") or {}
        except (OSError, ValueError):
            return {}
        return {name: entry.get("image") for name, entry in services.items()}

    # -- reading the stack ----------------------------------------------------------------------

