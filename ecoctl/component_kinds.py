"""What a core component is made of: its ports, health check, the place a local program lives, its
local and container recipes, and why a missing binary skips it. The catalog (`components`) declares
each component with these; data only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Mapping

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
    address: Callable[["Ecosystem"], str] | None = None
    """local: the address it listens on, when not 127.0.0.1 (where it is probed)."""

    def host(self, ecosystem: "Ecosystem") -> int:
        return self.host_port(ecosystem) if self.host_port else setting(ecosystem, self.setting)

    def listen_address(self, ecosystem: "Ecosystem") -> str:
        return self.address(ecosystem) if self.address else "127.0.0.1"


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
    env: Mapping[str, str] = field(default_factory=dict)
    """Every .env value (a config built from the ecosystem, like the sign-in's clients, needs many)."""
    state_dir: Path | None = None
    """The ecosystem's `.ecoctl/` folder (root's: read while rendering, never by the program)."""
    files: Path | None = None
    """Its copy of `files_from` (None: it has none)."""
    tls: tuple[Path, Path] | None = None
    """The certificate and key it presents (its recipe's `tls` leaf), copied where it reads them."""


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
    python_module: str = ""
    """A program of ecoctl's own: `python -m MODULE ARGS`, run by a Python the programs' user can
    execute, from a readable copy of ecoctl's package and of `python_packages` (their
    distributions and what they require), so the program never reads root's environment."""
    python_packages: tuple[str, ...] = ()
    stopsignal: str = "TERM"
    reload_signal: str = ""
    """What makes it read its config again."""
    reloads: Callable[[str, str], bool] | None = None
    """Whether a change of its rendered `config` (the text before, after) is taken by `reload_signal`
    while it runs, rather than by a restart (None: a changed config restarts it)."""
    reloaded: str = ""
    """A path on its port whose JSON answer names (`config`) the sha256 of the config it runs with:
    after `reload_signal` the runtime waits until it is the file's (else it restarts it)."""
    files_from: str = ""
    """A folder of the ecosystem's state (`.ecoctl/`) copied into its own, again at each reload."""
    setup: Callable[[Place], list[str]] | None = None
    """A command run once, as the programs' user, while its data folder is empty (a base backup)."""
    setup_env: Callable[[Place], Mapping[str, str]] | None = None
    """The environment `setup` (and `kept_check`) gets besides PATH (secrets go there, never in argv)."""
    kept_check: Callable[[Place], list[str]] | None = None
    """A command run before it starts while its data folder holds what `setup` made, as the programs'
    user: exit 0 keeps the data; exit 3 says (its output: why) the data can no longer be used, so it
    is removed and `setup` runs again; another exit fails `up` with its last line, data kept."""
    open_files: Callable[["Ecosystem"], int] | None = None
    """The open-file limit it needs (raised for it up to the hard limit)."""
    tls: str = ""
    """The ecosystem CA's leaf it presents (`certs.LEAVES`), copied into its folder."""
    python: bool = False
    """`binary` is Python: run by the interpreter the programs' user can run (not root's pyenv)."""


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
    config: Callable[["Ecosystem"], str] | None = None
    """A config file rendered from ecosystem.yaml (runtimes write it before starting it, and
    restart it when it changed), at `config_file` in the ecosystem, which `mounts` mounts."""
    config_file: str = ""
    files: Callable[[Place], Mapping[str, str]] | None = None
    """Files rendered for it from the ecosystem and .env (relative path -> text), written 0600 into
    `files_dir` (which `mounts` mounts read-only; its process runs as the container's root) before it
    starts; it is started again when one changed."""
    files_dir: str = ""
    public: bool = False
    """Its ports are published on `core.address` too, for the pattern-3 hosts (127.0.0.1 only otherwise)."""
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
    edge: str = ""
    """Where the edge routes to it: "/" (the web app) or "auth" (the sign-in's own origin)."""
    metrics: str = ""
    """Where it serves Prometheus metrics (a path on its first port; "": it serves none). Prometheus
    scrapes it with a job of its name, kept in prometheus.yml like a service's."""
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
