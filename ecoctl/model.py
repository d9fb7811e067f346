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
from ecoctl.support.checks import (TAG, check_host, check_image, check_line, check_registry,
                                   shown)
from ecoctl.support.typed import Invalid, Match, Range, Record, checked
from ecoctl.support.yaml import dump_roundtrip, fast_load, line_of, parse_yaml
from ecoctl.model_web import SigninSettings, check_calls, check_client
from ecoctl.names import check_service_name
from ecoctl.model_ports import first_clash
from ecoctl.model_settings import (  # noqa: F401  (re-exported: ecosystem.yaml's settings)
    AUTHENTIK_VERSION, DEFAULT_IMAGES, AlertmanagerSettings, AuthentikSettings, CoreSettings, EdgeSettings,
    ExternalPostgres, MonitoringSettings, Pattern, Port, PostgresSettings, RedisSettings)

FILENAME = "ecosystem.yaml"


Duration = Annotated[str, Match(r"[0-9]{1,6}(ms|s|m|h|d)")]
"""A Prometheus duration (`30s`, `5m`, `1h`)."""


@dataclass
class AlertSettings(Record):
    """A service's alerting rules (Prometheus, rules/<service>.yml): when each fires."""

    p95_ms: Annotated[int, Range(1, 3_600_000)] = 500
    """ServiceSlow: the 95th percentile latency over 5 minutes is above this many milliseconds."""
    error_percent: Annotated[int, Range(1, 100)] = 5
    """ServiceErrors: more than this share of its requests over 5 minutes answer 5xx."""
    after: Duration = "5m"
    """How long a condition holds before its alert fires (the rules' `for:`)."""


@dataclass
class ServiceSpec(Record):
    port: Port
    template: str = "python-fastapi"
    pattern: Pattern = "compose"
    host: str | None = None
    """Where an `external` service runs (address Prometheus scrapes and PostgreSQL allows)."""
    reads: list[str] = field(default_factory=list)
    redirect_uris: list[str] = field(default_factory=list)
    client: Literal["confidential", "public"] = "confidential"  # public: a web app (see model_web)
    calls: list[str] = field(default_factory=list)
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    replicas: Annotated[int, Range(0, 100)] = 1
    """Running copies (swarm runtime; the other runtimes run one)."""
    read_replica: bool = False  # DATABASE_READ_URL even without `reads` (when core.postgres.replicas is set)
    alerts: AlertSettings = field(default_factory=AlertSettings)

    @property
    def has_database(self) -> bool:
        """A service has a database and a role of its own; a web app (`client: public`) has none."""
        return self.client == "confidential"

    def check(self) -> None:
        checked(lambda ref: check_line(ref, "template", 1000), self.template, "template")
        if self.host is not None:
            self.host = checked(check_host, self.host, "host")
        check_client(self)


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
            checked(check_service_name, name, "services", name)
            for target in spec.reads:
                if target not in self.services:
                    raise Invalid(("services", name, "reads"), f"service {name!r} reads {target!r}, which is "
                                  "not a service here")
                if target == name:
                    raise Invalid(("services", name, "reads"), f"service {name!r} cannot list itself in reads")
                if not self.services[target].has_database:
                    raise Invalid(("services", name, "reads"), f"service {name!r} reads {target!r}, a web app, "
                                  "which has no database")
        check_calls(self.services)
        if self.runtime_user == "root":
            raise Invalid(("runtime_user",), "runtime_user cannot be root: name an unprivileged user, or "
                          "remove the key to use `ecoctl`")
        unknown = sorted(set(self.images) - set(DEFAULT_IMAGES))
        if unknown:
            raise Invalid(("images",), f"unknown image key {unknown[0]!r}: use one of {', '.join(DEFAULT_IMAGES)}")
        for key, image in self.images.items():
            checked(check_image, image, "images", key)
        if self.registry is not None:
            checked(check_registry, self.registry, "registry")

    def image(self, key: str) -> str:
        if key == "authentik" and key not in self.images:
            return f"ghcr.io/goauthentik/server:{self.core.authentik.version}"
        if key == "postgres" and key not in self.images:  # the version ecosystem.yaml names is the one that runs
            return f"postgres:{self.core.postgres.version}"
        return self.images.get(key, DEFAULT_IMAGES[key])

    @property
    def authentik_in_stack(self) -> bool:
        """Whether the stack runs its own Authentik (server, worker and its database): no
        `core.authentik.url` names an external one, and `core.signin.in_containers` does not put the
        development sign-in in its place in a container runtime)."""
        return not self.core.authentik.url and not (self.in_containers and self.core.signin.in_containers)

    @property
    def authentik_used(self) -> bool:
        """Whether services trust Authentik (the stack's or an external one) rather than the local
        runtime's development sign-in: only a stack in containers runs Authentik of its own (unless
        `core.signin.in_containers` runs the development sign-in there instead)."""
        return bool(self.core.authentik.url) or (self.in_containers and not self.core.signin.in_containers)

    @property
    def signin_runs(self) -> bool:  # the development sign-in stands in for Authentik (no external one)
        return not self.authentik_used

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
        return {port: piece for piece, (_, port) in self.core_port_keys.items()}

    @property
    def core_port_keys(self) -> dict[str, tuple[tuple[str, ...], int]]:
        """Each core piece that takes a host port: the key in ecosystem.yaml that sets it, and the port."""
        core = self.core
        keys = {} if core.postgres.external else {"postgres": (("core", "postgres", "port"), core.postgres.port)}
        if not core.postgres.external:  # the data layer's pieces beside the stack's own server
            keys.update({piece: (("core", "postgres", key), getattr(core.postgres, key)) for piece, key, wanted in (
                ("pgbouncer", "pooler_port", core.postgres.pooler), ("postgres-replica", "replica_port",
                                                                     core.postgres.replicas)) if wanted})
        keys.update({"redis": (("core", "redis", "port"), core.redis.port),
                     "authentik": (("core", "authentik", "port"), core.authentik.port),
                     "prometheus": (("core", "monitoring", "prometheus_port"), core.monitoring.prometheus_port),
                     "grafana": (("core", "monitoring", "grafana_port"), core.monitoring.grafana_port)})
        if core.monitoring.enabled and core.monitoring.alertmanager.enabled:
            keys["alertmanager"] = (("core", "monitoring", "alertmanager", "port"), core.monitoring.alertmanager.port)
        if self.edge_on:
            keys.update({"edge": (("core", "edge", "port"), core.edge.port),
                         "edge (http)": (("core", "edge", "http_port"), core.edge.http_port),
                         "edge (sign-in)": (("core", "edge", "auth_port"), core.edge.auth_port)})
        return keys

    @property
    def edge_on(self) -> bool:
        return self.core.edge.enabled

    def origins(self, service: str) -> list[str]:
        """Where a web app's URIs default to: its origins on this host, and the edge's when the edge
        serves it at `/` (`core.edge.web`)."""
        from ecoctl.names import origins

        found = origins(self.services[service].port)
        return found + [f"{self.edge_url()}/"] if self.edge_on and service == self.core.edge.web else found

    def web_redirect_uris(self, service: str) -> list[str]:
        """Where a web app's sign-in returns when its `redirect_uris` are not given: `/callback` on
        each of its origins (the page asks for its own origin's)."""
        return [f"{origin}callback" for origin in self.origins(service)]

    def edge_url(self, sign_in: bool = False) -> str:
        """The edge's HTTPS origin for the apps (or for the sign-in); the edge must be on."""
        edge, host = self.core.edge, self.core.address or "127.0.0.1"
        if edge.domain:
            return f"https://auth.{edge.domain}" if sign_in else f"https://{edge.domain}"
        return f"https://{host}:{edge.auth_port if sign_in else edge.port}"

    @property
    def sign_in_origin(self) -> str:
        """Where people and tokens' `iss` find the sign-in: an external Authentik, else the edge's
        sign-in origin when the edge is on, else the stack's Authentik."""
        return self.edge_url(sign_in=True) if self.edge_on and not self.core.authentik.url else self.authentik_url


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
            line = line_of(document, exc.loc)
            key = ".".join(str(part) for part in exc.loc) or "(top level)"
            if exc.problem in ("unknown key", "missing key"):
                message = f"{exc.problem} {key!r}"
            else:
                message = f"{key}: {exc.problem}"
                if exc.given is not Invalid.MISSING:
                    message += f" (got {shown(exc.given)})"
            where = f":{line}" if line else ""
            raise UsageError(f"{path}{where}: {message}") from None
        port_clash = first_clash(model)
        if port_clash:
            key, message = port_clash
            if text is not None and not hasattr(document, "lc"):  # plain data: lines come from the round-trip form
                document = parse_yaml(path, text)
            line = line_of(document, key)
            raise UsageError(f"{path}{f':{line}' if line else ''}: {'.'.join(key)}: {message}")
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
