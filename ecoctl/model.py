"""The ecosystem model: `ecosystem.yaml`, the desired state, typed.

Loading validates every key and type; a bad file raises one `UsageError` naming file, line and
key. Saving is round-trip: the user's comments and key order survive (ruamel.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from ecoctl.errors import UsageError
from ecoctl.support.atomic import read_text, write_atomic
from ecoctl.support.checks import check_host, check_redirect_uri, shown
from ecoctl.support.typed import Invalid, Match, Range, Record
from ecoctl.support.yaml import dump_roundtrip, fast_load, parse_yaml
from ecoctl.names import check_service_name

FILENAME = "ecosystem.yaml"
AUTHENTIK_VERSION = "2025.12.4"
Pattern = Literal["compose", "separate", "external"]
Port = Annotated[int, Range(1, 65535)]
"""A TCP port: an integer 1-65535, strictly (`true` or "80" are refused, not read as 1 or 80)."""
DEFAULT_IMAGES = {
    "postgres": "postgres:16",
    "redis": "redis:7",
    "authentik": f"ghcr.io/goauthentik/server:{AUTHENTIK_VERSION}",
    "prometheus": "prom/prometheus:v3.5.0",
    "grafana": "grafana/grafana:12.2.0",
    "python": "python:3.12-slim",
    "go": "golang:1.26-bookworm",
    "base": "gcr.io/distroless/static-debian12:nonroot",
    "pgbouncer": "ecoctl/pgbouncer:1.18",  # Debian's pgbouncer with tests/docker/pgbouncer's entrypoint
}


@dataclass
class ExternalPostgres(Record):
    host: str
    port: Port = 5432
    admin_user: str = "postgres"
    password_env: str = "POSTGRES_PASSWORD"
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"


@dataclass
class PostgresSettings(Record):
    version: str = "16"
    port: Port = 5432
    external: ExternalPostgres | None = None
    pooler: Literal["pgbouncer"] | None = None
    """A connection pooler in front of the stack's PostgreSQL: services' DATABASE_URL goes through it."""
    pooler_port: Port = 6432
    max_client_conn: Annotated[int, Range(10, 100000)] = 1000
    """Client connections the pooler accepts at once (the seed's MAX_CLIENT_CONN)."""
    pool_size: Annotated[int, Range(1, 1000)] = 20
    """Server connections per pool (one pool per service database and role)."""
    replicas: Annotated[int, Range(0, 1)] = 0
    """Streaming read replicas (DATABASE_READ_URL points at one)."""
    replica_port: Port = 5433


@dataclass
class RedisSettings(Record):
    port: Port = 6379


@dataclass
class AuthentikSettings(Record):
    version: str = AUTHENTIK_VERSION
    port: Port = 9000
    url: str | None = None
    """An external Authentik's base URL; when set, the stack does not run its own."""
    token_env: str = "AUTHENTIK_BOOTSTRAP_TOKEN"
    signing_key: str = "authentik Self-signed Certificate"
    prefix: Annotated[str, Match(r"([a-z0-9][a-z0-9-]{0,40})?")] = ""
    """Prepended to every service's application slug and client_id (`init` records `<name>-`), so
    ecosystems sharing one Authentik each have their own `portfolio`; empty (older ecosystems): the
    service name itself, so nothing is renamed under a running system."""
    worker_replicas: Annotated[int, Range(0, 50)] = 1
    """Authentik worker replicas (swarm runtime; the other runtimes run one)."""
    concurrency: Annotated[int, Range(1, 32)] = 8
    """Authentik API requests `apply` keeps in flight at once (1: one change at a time)."""


@dataclass
class MonitoringSettings(Record):
    enabled: bool = True
    prometheus_port: Port = 9090
    grafana_port: Port = 3001


@dataclass
class CoreSettings(Record):
    postgres: PostgresSettings = field(default_factory=PostgresSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    authentik: AuthentikSettings = field(default_factory=AuthentikSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)


@dataclass
class ServiceSpec(Record):
    port: Port
    template: str = "python-fastapi"
    pattern: Pattern = "compose"
    host: str | None = None
    """Where an `external` service runs (address Prometheus scrapes and PostgreSQL allows)."""
    reads: list[str] = field(default_factory=list)
    redirect_uris: list[str] = field(default_factory=list)
    replicas: Annotated[int, Range(0, 100)] = 1
    """Running copies (swarm runtime; the other runtimes run one)."""
    read_replica: bool = False
    """DATABASE_READ_URL even without `reads` (when core.postgres.replicas is set)."""

    def check(self) -> None:
        if self.host is not None:
            self.host = _checked(check_host, self.host, "host")
        self.redirect_uris = [_checked(check_redirect_uri, uri, "redirect_uris", index)
                              for index, uri in enumerate(self.redirect_uris)]


@dataclass
class Ecosystem(Record):
    name: Annotated[str, Match(r"[a-z][a-z0-9-]{0,39}")]
    """Compose project, image and container prefix: lowercase letters, digits, hyphens."""
    runtime: Literal["docker", "local", "swarm"]
    runtime_user: Annotated[str, Match(r"[a-z_][a-z0-9_-]{0,31}")] | None = None
    """local runtime, when ecoctl runs as root: the unprivileged user every program runs as
    (default `ecoctl`, created when missing; a named one must exist). Never root."""
    templates_dir: str | None = None
    registry: str | None = None
    """swarm: where built service images are pushed (e.g. registry.example.com:5000), so other nodes can pull them."""
    core: CoreSettings = field(default_factory=CoreSettings)
    images: dict[str, str] = field(default_factory=dict)
    services: dict[str, ServiceSpec] = field(default_factory=dict)

    def check(self) -> None:
        for name, spec in self.services.items():
            _checked(check_service_name, name, "services", name)
            for target in spec.reads:
                if target not in self.services:
                    raise Invalid(("services", name, "reads"), f"service {name!r} reads {target!r}, which is "
                                  "not a service here")
                if target == name:
                    raise Invalid(("services", name, "reads"), f"service {name!r} cannot list itself in reads")
        if self.runtime_user == "root":
            raise Invalid(("runtime_user",), "runtime_user cannot be root: name an unprivileged user, or "
                          "remove the key to use `ecoctl`")
        postgres = self.core.postgres
        for key in ("pooler", "replicas"):
            if postgres.external and getattr(postgres, key):
                raise Invalid(("core", "postgres", key), f"core.postgres.{key} runs beside the stack's own "
                              "PostgreSQL: remove it, or core.postgres.external")
        unknown = sorted(set(self.images) - set(DEFAULT_IMAGES))
        if unknown:
            raise Invalid(("images",), f"unknown image key {unknown[0]!r}: use one of {', '.join(DEFAULT_IMAGES)}")

    def image(self, key: str) -> str:
        if key == "authentik" and key not in self.images:
            return f"ghcr.io/goauthentik/server:{self.core.authentik.version}"
        if key == "postgres" and key not in self.images:  # the version ecosystem.yaml names is the one that runs
            return f"postgres:{self.core.postgres.version}"
        return self.images.get(key, DEFAULT_IMAGES[key])

    @property
    def authentik_in_stack(self) -> bool:
        """Whether the stack runs its own Authentik (server, worker and its database): no
        `core.authentik.url` names an external one."""
        return not self.core.authentik.url

    @property
    def authentik_used(self) -> bool:
        """Whether services trust Authentik (the stack's or an external one) rather than the local
        signing key: only a stack in containers runs Authentik of its own."""
        return self.in_containers or not self.authentik_in_stack

    @property
    def authentik_url(self) -> str:
        """Authentik's base URL as ecoctl, on this host, reaches it (no trailing slash)."""
        return (self.core.authentik.url or f"http://127.0.0.1:{self.core.authentik.port}").rstrip("/")

    def postgres_version_differs(self, running: str) -> str:
        """Why the RUNNING server (`show server_version`) is not the one core.postgres.version names
        (empty: it is, or the version does not apply: an external server, the local runtime's own)."""
        wanted = str(self.core.postgres.version)
        if self.core.postgres.external or not self.in_containers or running.split(".")[0] == wanted.split(".")[0]:
            return ""
        return (f"PostgreSQL {running.split()[0]} runs, not {wanted} as core.postgres.version says (image "
                f"{self.image('postgres')}): set `images: postgres` to a {wanted} image, or the version to what runs")

    @property
    def in_containers(self) -> bool:
        """Whether the stack runs in containers on one network (docker, swarm), where its pieces
        reach each other by name, rather than as processes on this host (local)."""
        return self.runtime != "local"

    @property
    def core_ports(self) -> dict[int, str]:
        """The host ports the core stack takes, and which piece takes each."""
        core = self.core
        ports = {core.redis.port: "redis", core.authentik.port: "authentik",
                 core.monitoring.prometheus_port: "prometheus", core.monitoring.grafana_port: "grafana"}
        if not core.postgres.external:
            ports[core.postgres.port] = "postgres"
            if core.postgres.pooler:
                ports[core.postgres.pooler_port] = "pgbouncer"
            if core.postgres.replicas:
                ports[core.postgres.replica_port] = "postgres-replica"
        return ports


def _checked(check, value, *loc):
    """`check(value)`, its ValueError (or UsageError) as Invalid at `loc`."""
    try:
        return check(value)
    except (ValueError, UsageError) as exc:
        raise Invalid(loc, str(exc)) from None


def _line_of(document: Any, loc: tuple) -> int | None:
    """1-based line of the deepest key in `loc` that the round-trip document knows."""
    node, line = document, None
    for key in loc:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None and isinstance(key, str) and key in node:
                line = lc.key(key)[0] + 1
            elif lc is not None and isinstance(key, int):
                line = lc.item(key)[0] + 1
            node = node[key]
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return line


def port_clash(ecosystem: Ecosystem, name: str, port: int, pattern: str, host: str | None,
               among: dict[str, ServiceSpec] | None = None) -> str | None:
    """Why service NAME may not listen on PORT (None: it may): another service (of `among`, default
    all) on the same host has it, or the core stack does (a service of pattern `external` runs on
    HOST, not here)."""
    where = host if pattern == "external" else None
    core = ecosystem.core_ports
    if where is None and port in core:
        return f"port {port} is taken by the core stack's {core[port]}"
    for other, spec in (ecosystem.services if among is None else among).items():
        if other != name and spec.port == port and (spec.host if spec.pattern == "external" else None) == where:
            return f"port {port} is taken by service {other!r}"
    return None


def first_free_port(ecosystem: Ecosystem, name: str, start: int, pattern: str, host: str | None) -> int:
    """The first port from START no other service nor the core stack takes and, for a service
    that runs here, nothing on this host listens on."""
    from ecoctl.support.ports import free_on_host

    for port in range(start, 65536):
        if not port_clash(ecosystem, name, port, pattern, host) and (pattern == "external" or free_on_host(port)):
            return port
    raise UsageError(f"no port from {start} to 65535 is free for {name!r}: pass --port")


def _port_clash(ecosystem: Ecosystem) -> tuple[str, str] | None:
    """The first service whose port another service on its host or the core stack takes (what `up`
    would otherwise find out after stopping the working service)."""
    seen: dict[str, ServiceSpec] = {}
    for name, spec in ecosystem.services.items():
        clash = port_clash(ecosystem, name, spec.port, spec.pattern, spec.host, among=seen)
        if clash:
            return name, f"{clash}: choose another"
        seen = {**seen, name: spec}
    return None


class EcosystemFile:
    """ecosystem.yaml on disk: the typed model plus the round-trip document it came from."""

    def __init__(self, path: Path, document: Any, model: Ecosystem, text: str | None = None,
                 data: Any = None):
        """`document` may be None when `text` is given: it is parsed round-trip on first use (reading
        and validating use the fast loader, whose plain `data` may come along; only an edit needs
        comments and order)."""
        self.path = path
        self._document = document
        self._text = text
        self._data = data
        self.model = model

    @property
    def document(self) -> Any:
        if self._document is None:
            self._document = parse_yaml(self.path, self._text)
        return self._document

    @classmethod
    def load(cls, path: Path) -> "EcosystemFile":
        path = Path(path)
        try:
            text = read_text(path)
        except FileNotFoundError:
            raise UsageError(f"{path}: not found: run `ecoctl init DIR` or pass --dir") from None
        data = fast_load(path, text)
        if not isinstance(data, dict):
            raise UsageError(f"{path}:1: expected a mapping with at least `name` and `runtime`")
        return cls(path, None, cls.validate(path, data, text), text, data)

    @staticmethod
    def validate(path: Path, document: Any, text: str | None = None) -> Ecosystem:
        """The model of `document` (round-trip, or plain data read from `text`)."""
        try:
            model = Ecosystem.from_data(document)
        except Invalid as exc:
            if text is not None and not hasattr(document, "lc"):  # plain data: lines come from the round-trip form
                document = parse_yaml(path, text)
            line = _line_of(document, exc.loc)
            key = ".".join(str(part) for part in exc.loc) or "(top level)"
            if exc.problem in ("unknown key", "missing key"):
                message = f"{exc.problem} {key!r}"
            else:
                message = f"{key}: {exc.problem}"
                if exc.given is not Invalid.MISSING:
                    message += f" (got {shown(exc.given)})"
            where = f":{line}" if line else ""
            raise UsageError(f"{path}{where}: {message}") from None
        port_clash = _port_clash(model)
        if port_clash:
            name, message = port_clash
            if text is not None and not hasattr(document, "lc"):  # plain data: lines come from the round-trip form
                document = parse_yaml(path, text)
            line = _line_of(document, ("services", name, "port"))
            raise UsageError(f"{path}{f':{line}' if line else ''}: services.{name}.port: {message}")
        return model

    def reloaded(self) -> "EcosystemFile":
        """The file as it is on disk now: this one when its text has not changed since it was read."""
        try:
            unchanged = self._text is not None and read_text(self.path) == self._text
        except FileNotFoundError:
            unchanged = False
        return self if unchanged else self.load(self.path)

    def add_entries(self, key: str, entries: dict[str, Any]) -> bool:
        """Add ENTRIES (new keys) to the top-level mapping KEY and save. Inserted as text when the file
        is plainly laid out (every other byte kept, no round-trip parse), else a round-trip edit."""
        from ecoctl.support.yaml_append import appended

        if self._document is None and self._text is not None and self._data is not None:
            done = appended(self.path, self._text, self._data, key, entries)
            if done is not None:
                text, data = done
                self.model = self.validate(self.path, data, text)
                write_atomic(self.path, text)
                self._text, self._data = text, data
                return True

        def mutate(document) -> None:
            if document.get(key) is None:
                document[key] = {}
            document[key].update(entries)

        return self.update(mutate)

    def update(self, mutate) -> bool:
        """Apply `mutate(document)` to the round-trip document, re-validate, and save if it changed."""
        before = self.dump()
        mutate(self.document)
        self.model = self.validate(self.path, self.document)
        after = self.dump()
        if after == before:
            return False
        write_atomic(self.path, after)
        self._text, self._data = after, None
        return True

    def dump(self) -> str:
        return dump_roundtrip(self.document)

    def save(self) -> None:
        write_atomic(self.path, self.dump())
