"""The swarm runtime's stack file: the same desired state as compose.yaml, shaped for `docker stack deploy`.

Core pieces (PostgreSQL, Redis, Authentik, Prometheus, Grafana) come from the ecosystem's compose.yaml,
which the compose provider keeps converged and the user may extend; services come from the service
contract. What changes for swarm:

- Every service resolves by DNS round robin (`endpoint_mode: dnsrr`): no service VIPs, no ingress
  routing mesh, so the stack also runs on kernels without IPVS.
- Ports are published in `mode: host` (swarm cannot bind them to 127.0.0.1 only: they listen on
  every address of the node). A service's own port is published by a one-replica TCP edge in front of
  it (`NAME_edge`, ecoctl's `swarm_edge.py`), so any number of replicas share it on one node.
- Secrets are Docker secrets named `<eco>_<KEY>_<sha8>` (a new name per value, so a rotation is a
  rolling update), mounted under /run/secrets and given as `VAR_FILE` (Authentik: `file://`, Grafana:
  `VAR__FILE`); the stack file holds no secret value.
- Stateful pieces run one replica, pinned to this node (their named volume lives here), updated
  stop-first; services update start-first, gated by their healthcheck, rolling back on failure.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from ecoctl import components
from ecoctl.errors import UsageError

STACK_VERSION = "3.8"
NETWORK = "net"
EDGE_SUFFIX = "_edge"
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "SECRET_KEY")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
DROPPED = ("container_name", "restart", "depends_on", "build", "profiles")
SERVICE_HEALTHCHECK = {"interval": "2s", "timeout": "3s", "retries": 3, "start_period": "60s"}
"""Faster than the images' own checks (which the test command is inherited from): the rollout waits on it."""
SERVICE_UPDATE = {"parallelism": 1, "order": "start-first", "failure_action": "rollback", "monitor": "5s",
                  "delay": "0s"}
SERVICE_ROLLBACK = {"parallelism": 1, "order": "stop-first", "monitor": "5s"}
"""Stop-first: a start-first rollback can restart healthy tasks and leave one task too many running
(moby/moby#43081); the tasks it replaces have failed, so stopping them first costs no capacity."""
STATEFUL_UPDATE = {"parallelism": 1, "order": "stop-first", "failure_action": "rollback"}
RESTART = {"condition": "any", "delay": "2s"}


def is_secret_key(key: str) -> bool:
    return any(key.endswith(word) for word in SECRET_WORDS)


def secret_name(ecosystem: str, key: str, value: str) -> str:
    """`<eco>_<KEY>_<sha8>`: a new name for each value (Docker secrets are immutable), ≤ 64 characters."""
    digest = hashlib.sha256(f"{key}\0{value}".encode()).hexdigest()[:8]
    name = f"{ecosystem}_{key}_{digest}"
    if len(name) > 64:
        name = f"{ecosystem}_{key[:63 - len(ecosystem) - 10 - 5]}_{hashlib.sha256(key.encode()).hexdigest()[:4]}_{digest}"
    return name


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


class Rendering:
    """One stack file being built; `secrets` collects the .env keys it mounts."""

    def __init__(self, workspace):
        self.workspace = workspace
        self.ecosystem = workspace.ecosystem
        self.secrets: dict[str, str] = {}  # .env key -> docker secret name

    def value_of(self, key: str, op: str | None, arg: str, where: str) -> str:
        value = self.workspace.env.get(key)
        if value:
            return value
        if op and op.endswith("?"):
            raise UsageError(f"{key} is missing from .env ({where} needs it): {arg or 'run `ecoctl apply`'}")
        return arg if op else ""

    def environment(self, service: str, environment: Any, secrets_as: str = "_FILE") -> tuple[dict[str, str], list[str]]:
        """Interpolated variables, secrets turned into files (`VAR_FILE`, `VAR__FILE` or a
        `file://` value, as SECRETS_AS says the service reads them); and the secret keys used."""
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
        out: dict[str, str] = {}
        used: list[str] = []
        for var, raw in (environment or {}).items():
            raw = "" if raw is None else str(raw)
            keys = [match.group(1) for match in INTERPOLATION.finditer(raw)]
            secret = [key for key in keys if is_secret_key(key)]
            if secret:
                if len(keys) != 1 or INTERPOLATION.fullmatch(raw) is None:
                    raise UsageError(f"compose.yaml: {service}.environment.{var} mixes a secret with other "
                                     "text; swarm mounts secrets as files: give the secret alone")
                key = secret[0]
                match = INTERPOLATION.fullmatch(raw)
                self.value_of(key, match.group(2), match.group(3) or "", f"{service}.{var}")
                used.append(key)
                path = f"/run/secrets/{key}"
                if secrets_as == "file://":
                    out[var] = f"file://{path}"
                else:
                    out[f"{var}{secrets_as}"] = path
                continue
            out[var] = INTERPOLATION.sub(
                lambda m: self.value_of(m.group(1), m.group(2), m.group(3) or "", f"{service}.{var}"), raw)
        return out, used

    def command_reading_secrets(self, service: str, command: list) -> tuple[list, list[str]]:
        """COMMAND with each `${SECRET}` read from its Docker secret file by a shell at start (never
        the value in the stack file); and the .env keys it reads."""
        import shlex

        used: list[str] = []
        words = []
        for word in map(str, command):
            match = INTERPOLATION.fullmatch(word)
            if match and is_secret_key(match.group(1)):
                self.value_of(match.group(1), match.group(2), match.group(3) or "", f"{service}.command")
                used.append(match.group(1))
                words.append(f'"$$(cat /run/secrets/{match.group(1)})"')  # $$: the stack file escapes $
            else:
                words.append(shlex.quote(INTERPOLATION.sub(
                    lambda m: self.value_of(m.group(1), m.group(2), m.group(3) or "", f"{service}.command"), word)))
        if not used:
            return list(command), []
        return ["sh", "-c", "exec " + " ".join(words)], used

    def mount_secrets(self, entry: dict, keys: list[str]) -> None:
        if not keys:
            return
        entry["secrets"] = [{"source": key, "target": key} for key in keys]
        for key in keys:
            self.secrets[key] = secret_name(self.ecosystem.name, key, self.workspace.env.get(key) or "")

    def ports(self, ports: list) -> list[dict]:
        published = []
        for port in ports or []:
            if isinstance(port, dict):
                published.append({**port, "mode": "host"})
                continue
            parts = str(port).split(":")
            target = parts[-1].split("/")[0]
            host = parts[-2] if len(parts) >= 2 else target
            published.append({"target": int(target), "published": int(host), "protocol": "tcp", "mode": "host"})
        return published

    def volumes(self, volumes: list) -> list:
        root = self.workspace.root
        out = []
        for volume in volumes or []:
            if isinstance(volume, str) and volume.startswith((".", "/")):
                source, _, rest = volume.partition(":")
                out.append(f"{(root / source).resolve() if source.startswith('.') else source}:{rest}")
            else:
                out.append(volume)
        return out


def core_entry(rendering: Rendering, component, entry: dict, node: str) -> dict:
    """COMPONENT's stack service, from its compose.yaml entry (which the user may have extended)."""
    key, recipe = component.name, component.container
    entry = _plain(entry)
    for dropped in DROPPED:
        entry.pop(dropped, None)
    environment, secrets = rendering.environment(key, entry.pop("environment", None), recipe.secrets_as)
    for variable in recipe.swarm_dropped:
        for suffix in ("", "_FILE", "__FILE"):
            environment.pop(variable + suffix, None)
    if isinstance(entry.get("command"), list):  # a secret in its command is read from its file at start
        entry["command"], used = rendering.command_reading_secrets(key, entry["command"])
        secrets = sorted(set(secrets) | set(used))
    if recipe.swarm_healthcheck:
        entry["healthcheck"] = {**(entry.get("healthcheck") or {}), "test": list(recipe.swarm_healthcheck)}
    if environment:
        entry["environment"] = environment
    rendering.mount_secrets(entry, secrets)
    if "ports" in entry:
        entry["ports"] = rendering.ports(entry["ports"])
    if "volumes" in entry:
        entry["volumes"] = rendering.volumes(entry["volumes"])
    entry["networks"] = [NETWORK]
    ecosystem = rendering.ecosystem
    replicas = components.setting(ecosystem, component.replicas) if component.replicas else 1
    deploy: dict[str, Any] = {"endpoint_mode": "dnsrr", "replicas": replicas, "restart_policy": RESTART,
                              "labels": {"ecoctl.component": key}}
    if recipe.config is not None:  # a new config file rolls the service (its task reads it at start)
        import hashlib

        text = recipe.config(ecosystem).encode()
        deploy["labels"]["ecoctl.config"] = hashlib.sha256(text).hexdigest()[:16]
    if component.data or entry.get("ports"):
        # its volume (or its host port) is on this node: one replica, here, stopped before replaced
        deploy["placement"] = {"constraints": [f"node.hostname == {node}"]}
        deploy["update_config"] = STATEFUL_UPDATE
    else:
        deploy["update_config"] = SERVICE_UPDATE
        deploy["rollback_config"] = SERVICE_ROLLBACK
    entry["deploy"] = deploy
    return entry


def service_environment(rendering: "Rendering", name: str) -> tuple[dict[str, str], list[str]]:
    """The service contract's swarm variant (secrets as `NAME_FILE`), and the .env keys it mounts."""
    from ecoctl import contract

    keys = list(contract.service_secret_keys(rendering.ecosystem, name).values())
    for key in keys:
        rendering.value_of(key, ":?", "run `ecoctl apply`", f"{name}")
    return contract.environment(rendering.workspace, name, "swarm"), keys


def app_entries(rendering: Rendering, name: str, spec, image: str, node: str) -> dict[str, dict]:
    """The service (replicated, start-first, health-gated rollback) and its edge publishing its port."""
    environment, secrets = service_environment(rendering, name)
    entry: dict[str, Any] = {
        "image": image,
        "init": True,
        "environment": environment,
        "networks": [NETWORK],
        "healthcheck": dict(SERVICE_HEALTHCHECK),
        "deploy": {"endpoint_mode": "dnsrr", "replicas": spec.replicas, "restart_policy": RESTART,
                   "update_config": SERVICE_UPDATE, "rollback_config": SERVICE_ROLLBACK,
                   "labels": {"ecoctl.service": name}},
    }
    rendering.mount_secrets(entry, secrets)
    edge = {
        "image": rendering.ecosystem.image("python"),
        "init": True,
        "command": ["python", "/edge.py"],
        "environment": {"EDGE_LISTEN": str(spec.port), "EDGE_TARGET": f"{name}:{spec.port}"},
        "configs": [{"source": "edge", "target": "/edge.py"}],
        "ports": [{"target": spec.port, "published": spec.port, "protocol": "tcp", "mode": "host"}],
        "networks": [NETWORK],
        "deploy": {"endpoint_mode": "dnsrr", "replicas": 1, "restart_policy": RESTART,
                   "placement": {"constraints": [f"node.hostname == {node}"]},
                   "update_config": STATEFUL_UPDATE, "labels": {"ecoctl.edge": name}},
    }
    return {name: entry, name + EDGE_SUFFIX: edge}


def edge_script() -> Path:
    return Path(__file__).with_name("swarm_edge.py")


def compose_services(path: Path) -> dict:
    """The services of the ecosystem's compose.yaml (the swarm stack's core comes from it)."""
    from ecoctl.support.atomic import read_text
    from ecoctl.support.yaml import MAX_YAML_BYTES, fast_load

    if not path.is_file():
        raise UsageError("compose.yaml is missing (the swarm stack's core comes from it): run `ecoctl init --force`")
    data = fast_load(path, read_text(path, MAX_YAML_BYTES))  # a file ecoctl writes: one entry a service
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a compose file (expected a mapping)")
    return data.get("services") or {}


def render(workspace, wanted: set[str], images: dict[str, str], node: str) -> tuple[dict, dict[str, str]]:
    """The stack file holding WANTED (core components and service names); and .env key -> secret name."""
    rendering = Rendering(workspace)
    ecosystem = workspace.ecosystem
    core = compose_services(workspace.root / "compose.yaml")
    services: dict[str, dict] = {}
    volumes: set[str] = set()
    for component in components.enabled(ecosystem):
        key = component.name
        if key in wanted and component.container is not None and isinstance(core.get(key), dict):
            services[key] = core_entry(rendering, component, core[key], node)
            volumes |= {str(v).split(":", 1)[0] for v in core[key].get("volumes") or []
                        if not str(v).startswith((".", "/"))}
    uses_edge = False
    for name, spec in ecosystem.services.items():
        if name in wanted and spec.pattern != "external":
            services.update(app_entries(rendering, name, spec, images[name], node))
            uses_edge = True
    document: dict[str, Any] = {
        "version": STACK_VERSION,
        "services": services,
        "networks": {NETWORK: {"driver": "overlay", "attachable": True}},
    }
    if volumes:
        document["volumes"] = {volume: {} for volume in sorted(volumes)}
    if rendering.secrets:
        document["secrets"] = {key: {"external": True, "name": name}
                               for key, name in sorted(rendering.secrets.items())}
    if uses_edge:
        digest = hashlib.sha256(edge_script().read_bytes()).hexdigest()[:8]
        document["configs"] = {"edge": {"file": str(edge_script()), "name": f"{ecosystem.name}_edge_{digest}"}}
    return document, rendering.secrets
