"""The Docker secrets a swarm stack mounts: made from .env under the ecosystem's label, and
removed once no task of the stack uses them."""

from __future__ import annotations

OWNER_LABEL = "ecoctl.ecosystem"
KEY_LABEL = "ecoctl.key"


class SwarmSecrets:
    """Mixed into SwarmRuntime: this ecosystem's Docker secrets."""

    def ensure_secrets(self, secrets: dict[str, str]) -> None:
        existing = {secret.name for secret in self.client.secrets.list(filters={"label": f"{OWNER_LABEL}={self.stack}"})}
        for key, name in secrets.items():
            if name not in existing:
                self.progress(f"docker secret {name} (from .env {key})")
                self.client.secrets.create(name=name, data=self.workspace.secret(key).encode(),
                                           labels={OWNER_LABEL: self.stack, KEY_LABEL: key})

    def prune_secrets(self, keep: set[str] | None = None) -> None:
        """Remove this ecosystem's secrets no task uses any more (in-use ones stay until the next run)."""
        from docker.errors import APIError

        current = keep if keep is not None else self._current_secret_names()
        for secret in self.client.secrets.list(filters={"label": f"{OWNER_LABEL}={self.stack}"}):
            if secret.name not in current:
                try:
                    secret.remove()
                except APIError:
                    pass

    def _current_secret_names(self) -> set[str]:
        names = set()
        for service in self.services().values():
            for ref in service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"].get("Secrets") or []:
                names.add(ref.get("SecretName"))
        return names
