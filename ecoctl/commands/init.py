"""`ecoctl init`: a new ecosystem directory with its desired state, secrets and core files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ecoctl.errors import EcoctlError, UsageError
from ecoctl.model import AUTHENTIK_VERSION, FILENAME
from ecoctl.support.resources import stacks_dir


@dataclass
class InitResult:
    root: Path
    runtime: str
    reason: str = ""
    created: list[str] = field(default_factory=list)
    secrets_added: list[str] = field(default_factory=list)
    secrets_kept: list[str] = field(default_factory=list)


def docker_engine_answers(timeout: float = 2.0) -> bool:
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def choose_runtime() -> tuple[str, str]:
    """docker only when the whole chain works (an engine answers AND Compose v2 is found), else
    local; with the reason, for init's output."""
    if not docker_engine_answers():
        return "local", "no Docker engine answers"
    from ecoctl.clients.docker import compose_command

    try:
        compose = " ".join(compose_command())
    except EcoctlError:
        from ecoctl.clients.docker import INSTALL_COMPOSE

        return "local", ("a Docker engine answers but Docker Compose v2 is missing (for the docker runtime: "
                         f"`{INSTALL_COMPOSE}` or the compose plugin, then `ecoctl init --force --runtime "
                         "docker .` in the ecosystem)")
    return "docker", f"a Docker engine answers and Compose v2 is available ({compose})"


def core_services(without: tuple[str, ...] = ()) -> list[dict]:
    """The services `init` writes into ecosystem.yaml: one per shipped core template (`core: true`),
    named by its service_name default, on its default port; an optional one (the web app) unless
    WITHOUT names it."""
    from ecoctl.names import default_redirect_uri
    from ecoctl.service_templates import list_templates

    templates = [template for template in list_templates() if template.core]
    optional = [template.core_service for template in templates if template.optional]
    for name in without:
        if name not in optional:
            raise UsageError(f"--without {name}: not an optional core service (those are: {', '.join(optional)})")
    return [{"name": template.core_service, "template": template.name, "port": template.default_port,
             "redirect_uri": default_redirect_uri(template.default_port), "client": template.client,
             "calls": list(template.calls), "optional": template.optional}
            for template in templates if template.core_service not in without]


def _ecosystem_yaml(name: str, runtime: str, services: list[dict]) -> str:
    import jinja2

    template = (stacks_dir() / "core" / "ecosystem.yaml.j2").read_text()
    return jinja2.Template(template, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
                           ).render(name=name, runtime=runtime, authentik_version=AUTHENTIK_VERSION,
                                    core_services=services)


def default_name(directory: Path) -> str:
    import re

    name = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")
    return name if re.fullmatch(r"[a-z][a-z0-9-]*", name or "") else "ecosystem"


def init_ecosystem(directory: Path, runtime: str | None = None, force: bool = False,
                   without: tuple[str, ...] = ()) -> InitResult:
    from ecoctl.model import EcosystemFile
    from ecoctl.workspace import Workspace, check_not_shared

    directory = Path(directory)
    services = core_services(tuple(without))  # a wrong --without is refused before anything is written
    check_not_shared(directory)
    spec_path = directory / FILENAME
    if spec_path.exists() and not force:
        raise UsageError(f"{directory} already holds an ecosystem ({FILENAME}): pass --force to "
                         "re-create missing files and secrets (existing ones are kept)")
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a directory: choose another path")

    reason = "as asked (--runtime)"
    if runtime is None and spec_path.exists():
        runtime, reason = EcosystemFile.load(spec_path).model.runtime, "kept from ecosystem.yaml"
    if runtime is None:
        runtime, reason = choose_runtime()
    result = InitResult(root=directory.resolve(), runtime=runtime, reason=reason)

    directory.mkdir(parents=True, exist_ok=True)
    if spec_path.exists():
        spec = EcosystemFile.load(spec_path)
        if spec.model.runtime != runtime:
            _refuse_while_running(directory, spec.model.runtime, runtime)
            spec.update(lambda document: document.__setitem__("runtime", runtime))
    else:
        from ecoctl.support.atomic import write_atomic

        write_atomic(spec_path, _ecosystem_yaml(default_name(directory), runtime, services))
        result.created.append(FILENAME)

    workspace = Workspace(directory)
    workspace.lock_for_changes()
    try:
        return _fill(workspace, result)
    finally:
        workspace.unlock()


def _refuse_while_running(directory: Path, current: str, wanted: str) -> None:
    from ecoctl.runtimes import get_runtime
    from ecoctl.workspace import Workspace

    try:
        running = get_runtime(Workspace(directory)).is_running()
    except EcoctlError:  # e.g. no engine answers: nothing of it runs
        running = False
    if running:
        raise EcoctlError(f"the {current} runtime runs this ecosystem's stack: stop it with `ecoctl down` "
                         f"first, then switch to {wanted}")


def _created(change) -> str:
    """What init's `+` line says: a file's path, else what the thing is and where it lives."""
    if change.kind == "file":
        return change.name
    if change.kind == "compose service":
        return f"{change.name}: a service in compose.yaml"
    if change.kind == "service files":
        return f"{change.name}: the {change.name.rsplit('/', 1)[-1]} service's code, from its template"
    return f"{change.name} ({change.kind})"


def _fill(workspace, result: InitResult) -> InitResult:
    from ecoctl.commands.reconcile import converge
    from ecoctl.contract import secret_keys

    had = set(workspace.env.values)
    keys = secret_keys(workspace.ecosystem)
    result.secrets_added = workspace.ensure_secrets(keys)
    result.secrets_kept = [key for key in dict.fromkeys(keys) if key in had]
    if "AUTHENTIK_BOOTSTRAP_EMAIL" not in workspace.env:
        workspace.record({"AUTHENTIK_BOOTSTRAP_EMAIL": "admin@example.com"})
    if workspace.ecosystem.signin_runs:  # the development sign-in signs with the local key
        from ecoctl.local_auth import ensure_signing_key

        if ensure_signing_key(workspace):
            result.created.append(".ecoctl/keys")
    applied = converge(workspace, only={"files", "compose"})
    result.created += [_created(change) for change in applied.changes]
    return result
