"""`ecoctl add-service / remove-service / list`: the seed's eight manual steps as one command each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ecoctl import contract
from ecoctl import kept
from ecoctl.commands.reconcile import converge, plan_workspace
from ecoctl.errors import UsageError
from ecoctl.model import ServiceSpec
from ecoctl.model_ports import first_free_port, port_clash
from ecoctl.names import check_service_name
from ecoctl.plan import Change, Options, pending_json
from ecoctl.providers import FILE_SYSTEMS, systems_used
from ecoctl.support.checks import check_host, check_redirect_uri, shown, url_host
from ecoctl.support.typed import Invalid
from ecoctl.template_run import is_required_core


def shared_write_refused(service: str, target: str) -> UsageError:
    """The seed's rule, for a request to let SERVICE write TARGET's database (`reads:` is the only grant)."""
    return UsageError(f"{service} may not write {target}'s database: cross-service writes go through "
                      f"{target}'s API, not direct database access; use `reads: [{target}]` for read access")


@dataclass
class ServiceRequest:
    name: str
    template: str | None = None
    port: int | None = None
    pattern: str | None = None
    reads: list[str] | None = None
    redirect_uris: list[str] = field(default_factory=list)
    host: str | None = None
    replicas: int | None = None
    calls: list[str] | None = None
    """A web app's APIs (`--calls`); None: as it was, else its template's `calls`."""


@dataclass
class ServiceResult:
    name: str
    spec_changed: bool = False
    applied: list[Change] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)
    started: bool = False
    health: str | None = None
    notes: list[str] = field(default_factory=list)
    shown_live: bool = False
    """Whether the applied changes were already shown, one by one, as they were applied."""

    def to_json(self) -> dict:
        return {"service": self.name, "spec_changed": self.spec_changed,
                "applied": [change.to_json() for change in self.applied],
                "pending": pending_json(self.pending),
                "started": self.started, "health": self.health, "notes": self.notes}


def desired_spec(workspace, request: ServiceRequest, notes: list[str] | None = None) -> ServiceSpec:
    """Validate the request against the ecosystem; raise a one-line UsageError before anything is
    written. A port chosen for the request is said in NOTES."""
    from ecoctl.template_sources import resolve

    name = check_service_name(request.name)
    refuse_core_name(workspace, name)
    services = workspace.ecosystem.services
    existing = services.get(name)
    kept_folder = existing is None and kept.folder(workspace, name).exists()
    record = kept.read_record(workspace, name) if kept_folder else None
    if record:  # a removed service coming back: what it was, unless options say otherwise
        try:
            existing = ServiceSpec.from_data({key: record[key] for key in kept.RECORDED_KEYS
                                                   if key in record and key != "reads"})
        except ValueError:
            existing = None
    template = resolve(request.template or (existing.template if existing else "python-fastapi"),
                       workspace.template_dirs()).template
    if template.core and not template.optional:
        raise UsageError(f"template {template.name} is a core template: `ecoctl init` creates its one service, "
                         f"{template.core_service}; choose another template")
    pattern = request.pattern or (existing.pattern if existing else "compose")
    host = request.host or (existing.host if existing else None)
    port = request.port if request.port is not None else (existing.port if existing else None)
    if port is None:  # the template's port, or the next one free in the ecosystem and on the host
        port = first_free_port(workspace.ecosystem, name, template.default_port, pattern, host)
        if notes is not None and port != template.default_port:
            notes.append(f"port {port}: the template's port {template.default_port} is taken")
    if kept_folder and not record and not (isinstance(port, int) and kept.looks_rendered(workspace, name, template, port)):
        raise UsageError(f"services/{name}/ exists but is not a service in ecosystem.yaml, nor one ecoctl "
                         "made (no .ecoctl-service.json, not shaped like its template): choose another "
                         "name, or move that folder away")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UsageError(f"--port {shown(port)} is not a TCP port (1-65535)")
    clash = port_clash(workspace.ecosystem, name, port, pattern, host)
    if clash:
        raise UsageError(f"{clash}: pass another --port")
    reads = request.reads if request.reads is not None else (existing.reads if existing else [])
    for target in reads:
        if target == name:
            raise UsageError(f"--reads {target}: a service always reads its own database")
        if target not in services:
            raise UsageError(f"--reads {target}: no such service in ecosystem.yaml "
                             f"(services: {', '.join(services)})")
    if pattern not in ("compose", "separate", "external"):
        raise UsageError(f"--pattern must be compose, separate or external, not {pattern!r}")
    if pattern == "external" and not request.host and not (existing and existing.host):
        raise UsageError("--pattern external needs --host ADDRESS (where the service runs, for "
                         "Prometheus to scrape and PostgreSQL to allow)")
    for option, value, check in (("--host", request.host, check_host),
                                 *(("--redirect-uri", uri, check_redirect_uri) for uri in request.redirect_uris)):
        if value is not None:
            try:
                check(value)
            except ValueError as exc:
                raise UsageError(f"{option}: {exc}") from None
    calls = web_calls(workspace, name, template, request.calls, existing)
    template_ref = request.template or (existing.template if existing else template.name)
    try:
        return ServiceSpec(template=template_ref, port=port, pattern=pattern,
                           host=request.host or (existing.host if existing else None),
                           reads=sorted(set(reads)), client=template.client, calls=calls,
                           redirect_uris=request.redirect_uris or (existing.redirect_uris if existing else [])
                           or [contract.redirect_uri(workspace.ecosystem, name, port, pattern,
                                                     request.host and url_host(request.host),
                                                     public=template.client == "public")],
                           replicas=request.replicas if request.replicas is not None
                           else (existing.replicas if existing else 1))
    except Invalid as exc:
        raise UsageError(f"--{str(exc.loc[0]).replace('_', '-')} {shown(exc.given)}: {exc.problem}") from None


def web_calls(workspace, name: str, template, asked: list[str] | None, existing: ServiceSpec | None) -> list[str]:
    """The APIs a web app calls: as asked (`--calls`), else as it was, else its template's; each a
    service (an API) of the ecosystem. Only a web app's template (`client: public`) calls APIs."""
    if template.client != "public":
        if asked:
            raise UsageError(f"--calls: template {template.name} makes a service, not a web app; a web app "
                             "(e.g. --template react-vite) calls APIs with its users' tokens")
        return []
    calls = asked if asked is not None else (existing.calls if existing else list(template.calls))
    services = workspace.ecosystem.services
    for target in calls:
        if target == name or target not in services or services[target].client == "public":
            apis = [other for other, spec in services.items() if spec.client != "public" and other != name]
            raise UsageError(f"--calls {target}: not a service with an API in ecosystem.yaml "
                             f"(services: {', '.join(apis) or 'none'})")
    return list(dict.fromkeys(calls))


def refuse_core_name(workspace, name: str) -> None:
    """A core service's name (one in the ecosystem, or the one a core template makes) is init's."""
    owner = core_template_of(workspace, name)
    if owner is not None:
        raise UsageError(f"service name {name!r} is reserved for the core service of template {owner} "
                         "(`ecoctl init` creates it): choose another name")


def core_template_of(workspace, name: str) -> str | None:
    """The core template that service NAME belongs to: its own, if core; else, for a name not in
    the ecosystem, the core template that makes a service of that name; else None."""
    from ecoctl.service_templates import list_templates

    services = workspace.ecosystem.services
    if name in services:
        return services[name].template if is_required_core(workspace, name) else None
    return next((template.name for template in list_templates(workspace.template_dirs())
                 if template.core_service == name and not template.optional), None)


def removable_services(workspace) -> list[str]:
    """The services remove-service may remove: all but the core ones."""
    return [name for name in workspace.ecosystem.services if not is_required_core(workspace, name)]


def spec_difference(have: ServiceSpec, want: ServiceSpec) -> str:
    """`port 8080 -> 8081, pattern compose -> separate`: what re-running add-service would change."""
    before, after = have.as_dict(), want.as_dict()
    return ", ".join(f"{key} {before[key]} -> {after[key]}" for key in after if before[key] != after[key])


def _spec_document(spec: ServiceSpec) -> dict:
    document = {"template": spec.template, "port": spec.port, "pattern": spec.pattern}
    if spec.host:
        document["host"] = spec.host
    if spec.reads:
        document["reads"] = list(spec.reads)
    if spec.client != "confidential":
        document["client"] = spec.client
    if spec.calls:
        document["calls"] = list(spec.calls)
    document["redirect_uris"] = list(spec.redirect_uris)
    if spec.replicas != 1:
        document["replicas"] = spec.replicas
    return document


def _set_service(name: str, spec: ServiceSpec):
    def mutate(document) -> None:
        services = document.get("services")
        if services is None:
            document["services"] = services = {}
        entry = services.get(name)
        wanted = _spec_document(spec)
        if entry is None:
            services[name] = wanted
            return
        for key, value in wanted.items():
            if entry.get(key) != value:
                entry[key] = value
        for key in [key for key in entry if key not in wanted]:
            del entry[key]
    return mutate


def _check_renders(workspace, name: str, spec: ServiceSpec) -> None:
    """The service's template renders for it (else one UsageError), before ecosystem.yaml records it."""
    import dataclasses

    from ecoctl.service_templates import render_service_files, service_answers
    from ecoctl.template_sources import resolve

    ecosystem = dataclasses.replace(workspace.ecosystem, services={**workspace.ecosystem.services, name: spec})
    render_service_files(resolve(spec.template, workspace.template_dirs()).template, service_answers(ecosystem, name))


MONITORING = frozenset({"prometheus", "grafana"})
"""What watches a service: applied by add-service while the service starts (nothing waits on it)."""


def add_service(workspace, request: ServiceRequest, apply: bool = True,
                progress: Callable[[str], None] | None = None, adopt: bool = False) -> ServiceResult:
    from ecoctl.runtimes import get_runtime

    name = request.name
    result = ServiceResult(name)
    spec = desired_spec(workspace, request, result.notes)
    if name in workspace.ecosystem.services:
        result.spec_changed = workspace.ecosystem_file.update(_set_service(name, spec))
    else:
        _check_renders(workspace, name, spec)
        result.spec_changed = workspace.ecosystem_file.add_entries("services", {name: _spec_document(spec)})
    if kept.read_record(workspace, name):
        kept.drop_record(workspace, name)
        result.notes.append(f"re-attached the kept services/{name}/ (its files are kept as they are)")
    systems = systems_used(workspace.ecosystem)
    if not apply:
        done = converge(workspace, only=FILE_SYSTEMS & systems, options=Options(reload=False))
        result.applied += done.changes
        result.pending = {system: "not applied (--no-apply): `ecoctl apply` finishes it"
                          for system in ("postgres", "authentik") if system in systems}
        result.pending["runtime"] = "not started (--no-apply): `ecoctl up` starts it"
        return result
    # each change is shown as it is applied, so the lines come in the order things happen; what the
    # service needs to start comes first, its monitoring (scrape job, dashboard) while it starts
    def apply_systems(only, runtime=None) -> None:
        if not only:
            return
        done = converge(workspace, only=only, options=Options(adopt=adopt),
                        on_change=progress and (lambda change: progress(f"done {change}")), runtime=runtime)
        result.applied += done.changes
        result.pending.update(done.pending)

    apply_systems(systems - MONITORING)
    result.shown_live = progress is not None
    if spec.pattern == "external":
        apply_systems(systems & MONITORING)
        result.notes += external_instructions(workspace, name, spec)
        return result
    runtime = get_runtime(workspace, progress)
    blocked = [system for system in ("postgres", "authentik") if system in result.pending]
    if blocked:  # say what did not answer, not "the stack is not running" (it may well be)
        apply_systems(systems & MONITORING)
        result.pending["runtime"] = (f"not started: {' and '.join(blocked)} did not answer: "
                                     "`ecoctl up` starts it once they do")
    elif runtime.is_running():
        result.started = runtime.start_services([name])
        apply_systems(systems & MONITORING, runtime)  # its Prometheus reloads through the same runtime
        result.health = runtime.wait_healthy([name], timeout=180).get(name)
    else:
        apply_systems(systems & MONITORING)
        result.pending["runtime"] = "the stack is not running: `ecoctl up` starts the service"
    return result


def external_instructions(workspace, name: str, spec: ServiceSpec) -> list[str]:
    from ecoctl import firewall
    from ecoctl.errors import UsageError as NoRules

    variables = contract.environment(workspace, name, "external")
    lines = [f"{name} runs on {spec.host}; give it " + " ".join(f"{key}={value}" for key, value in variables.items()),
             f"copy the ecosystem's root certificate to {spec.host}:{contract.CA_FILE_EXTERNAL} "
             "(`ecoctl ca export`): it connects to PostgreSQL with sslmode=verify-full"]
    try:
        rules = firewall.render(workspace.ecosystem, "ufw", name)
    except NoRules as exc:  # no core.address yet
        return lines + [f"firewall rules: {exc}; then `ecoctl firewall {name}` prints them"]
    return lines + [f"firewall rules (`ecoctl firewall {name} --format nftables` for nftables):",
                    *(line for line in rules.splitlines() if line and not line.startswith("# ecoctl"))]


def remove_service(workspace, name: str, drop_data: bool = False, delete_files: bool = False,
                   progress: Callable[[str], None] | None = None) -> ServiceResult:
    import shutil

    from ecoctl.runtimes import get_runtime

    if name not in workspace.ecosystem.services:
        raise UsageError(f"no service {name!r} in ecosystem.yaml (services: "
                         f"{', '.join(removable_services(workspace)) or 'none'})")
    if is_required_core(workspace, name):
        raise UsageError(f"{name} is a core service (its template, {workspace.ecosystem.services[name].template}, "
                         "is core) and cannot be removed")
    readers = [other for other, spec in workspace.ecosystem.services.items() if name in spec.reads]
    if readers:
        raise UsageError(f"{', '.join(readers)} read(s) {name}'s database: remove {name} from their "
                         "`reads` first")
    callers = [other for other, spec in workspace.ecosystem.services.items() if name in spec.calls]
    if callers:
        raise UsageError(f"web app(s) {', '.join(callers)} call {name}: remove {name} from their `calls` first")
    result = ServiceResult(name)
    removed_spec = workspace.ecosystem.services[name]
    runtime = get_runtime(workspace, progress)
    try:
        if runtime.is_running():
            runtime.stop_service(name)
    except Exception as exc:  # a runtime that cannot be reached does not block the removal
        result.notes.append(f"could not stop {name}: {exc}")
    result.spec_changed = workspace.ecosystem_file.update(
        lambda document: document["services"].pop(name, None))
    try:
        runtime.services_changed()  # the local sign-in forgets its client
    except Exception as exc:
        result.notes.append(f"could not refresh what names the services: {exc}")
    # one system at a time, users of the service first: a failure leaves its data and role behind
    systems = systems_used(workspace.ecosystem)
    options = Options(drop_data=frozenset({name}) if drop_data else frozenset())
    for system in ("prometheus", "grafana", "authentik", "postgres", "compose"):
        if system in systems and (system != "postgres" or removed_spec.has_database):  # a web app has none
            done = converge(workspace, only={system}, options=options)
            result.applied += done.changes
            result.pending.update(done.pending)
    if delete_files and (workspace.root / "services" / name).is_dir():
        shutil.rmtree(workspace.root / "services" / name)
        from ecoctl.template_record import remove_pristine

        remove_pristine(workspace.root, name)  # upgrade's base
        result.notes.append(f"deleted services/{name}/")
    elif (workspace.root / "services" / name).is_dir():
        kept.write_record(workspace, name, removed_spec)
        result.notes.append(f"kept services/{name}/ (pass --delete-files to delete it; "
                            f"`ecoctl add-service {name}` re-attaches it)")
    return result


RESOURCE_KINDS = {"postgres": "database", "authentik": "oidc app", "prometheus": "scrape job",
                  "grafana": "dashboard"}


def list_services(workspace) -> list[dict]:
    """Each service with its spec and, per provider, `ok`, what is to do, or `unknown` (not reachable)."""
    from ecoctl.runtimes import get_runtime

    plan = plan_workspace(workspace)
    systems = systems_used(workspace.ecosystem)
    try:
        running = {c.name: c for c in get_runtime(workspace).status()}
    except Exception:
        running = {}
    rows = []
    for name, spec in workspace.ecosystem.services.items():
        state = {}
        mine = plan.for_service(name)
        for system, label in RESOURCE_KINDS.items():
            if system not in systems or (system == "postgres" and not spec.has_database):
                state[label] = "n/a"
            elif system in plan.pending:
                state[label] = "unknown"
            else:
                todo = [change.action for change in mine if change.system == system]
                state[label] = "ok" if not todo else ("missing" if "create" in todo else "differs")
        component = running.get(name)
        state["running"] = f"{component.state}/{component.health}" if component else "no"
        rows.append({"name": name, "template": spec.template, "port": spec.port,
                     "pattern": spec.pattern, "state": state})
    return rows
