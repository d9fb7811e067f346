"""An ecosystem directory: ecosystem.yaml (desired state), .env (secrets) and where each system answers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable

from ecoctl.errors import EcoctlError, UsageError
from ecoctl.model import FILENAME, Ecosystem, EcosystemFile
from ecoctl.support.checks import printable
from ecoctl.support.envfile import EnvFile

STATE_DIR = ".ecoctl"


@dataclass(frozen=True)
class PostgresEndpoint:
    host: str
    port: int
    user: str
    password: str
    sslmode: str = "prefer"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class AuthentikEndpoint:
    base_url: str
    token: str
    token_source: str = ""
    """Where the token was read from (`AUTHENTIK_TOKEN in /eco/.env`), for messages; never the token."""


def find_root(start: Path | None = None) -> Path:
    """The ecosystem directory: --dir, $ECOCTL_DIR, else the nearest folder upward holding ecosystem.yaml."""
    if start is not None and (Path(start) / FILENAME).is_file():
        return Path(start).resolve()
    if env_dir := os.environ.get("ECOCTL_DIR"):
        return Path(env_dir).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / FILENAME).is_file():
            return folder
    raise UsageError(f"no {FILENAME} in {here} or above: run `ecoctl init DIR`, or pass --dir DIR")


def check_not_shared(directory: Path) -> None:
    """Refuse DIRECTORY (an ecosystem folder, made or to be made) when another user could replace
    what is in it, as ssh refuses its files: the folder and each folder above it must belong to you
    or root and be writable by no one else (a group of its owner's alone may; above the ecosystem,
    a sticky folder like /tmp may too, where no one else can rename or remove what is yours)."""
    import stat

    me = os.geteuid()
    folder = Path(os.path.abspath(directory))
    own = True  # the ecosystem folder itself: no one else may even add to it
    while True:
        try:
            info = os.stat(folder)
        except FileNotFoundError:
            folder, own = folder.parent, False  # made by init: what decides is the folders above
            continue
        others = info.st_mode & 0o002 or (info.st_mode & 0o020 and not _private_group(info))
        if info.st_uid not in (me, 0) or (others and (own or not info.st_mode & stat.S_ISVTX)):
            raise UsageError(f"{printable(str(folder))} (owner uid {info.st_uid}, mode {stat.filemode(info.st_mode)}) "
                             "lets another user replace what ecoctl runs from the ecosystem: use a folder "
                             "owned by you or root that only its owner can write (chmod go-w)")
        if folder.parent == folder:
            return
        folder, own = folder.parent, False


def _private_group(info) -> bool:
    """Whether the group of a folder is its owner's alone (no other member; a user private group)."""
    import grp
    import pwd

    try:
        owner = pwd.getpwuid(info.st_uid)
        group = grp.getgrgid(info.st_gid)
    except KeyError:
        return False
    return group.gr_gid == owner.pw_gid and set(group.gr_mem) <= {owner.pw_name}


class Workspace:
    """The ecosystem directory. It is the one owner of `.env`: secrets are generated here, once,
    before anything is planned, and what a system hands back (`record`) is saved here."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.ecosystem_file = EcosystemFile.load(self.root / FILENAME)
        self._load_env()

    def _load_env(self) -> None:
        self._env = EnvFile(self.root / ".env")
        self._env_stamp = self._env_file_stamp()

    def _env_file_stamp(self) -> tuple | None:
        try:
            stat = (self.root / ".env").stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    @property
    def env(self) -> EnvFile:
        """.env as it is on disk now: re-read when another command (or process) saved it since."""
        if self._env_file_stamp() != self._env_stamp:
            self._load_env()
        return self._env

    @classmethod
    def open(cls, directory: Path | None = None) -> "Workspace":
        return cls(Path(directory).resolve() if directory else find_root())

    def lock_for_changes(self, timeout: float = 120.0) -> None:
        """Hold `.ecoctl/lock` until this process exits, so two commands never interleave their
        edits of ecosystem.yaml, .env and the compose files (each rewrites whole files)."""
        import fcntl
        import time

        check_not_shared(self.root)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o755)  # secrets inside are 0600/0700 each
        fd = os.open(self.state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise EcoctlError(f"another ecoctl command is changing {self.root} (it holds "
                                      f"{self.state_dir / 'lock'}): wait for it to finish") from None
                time.sleep(0.2)
        self._lock_fd: int | None = fd
        # what another command wrote while we waited is what we must build on
        self.ecosystem_file = self.ecosystem_file.reloaded()
        self._load_env()

    def unlock(self) -> None:
        if getattr(self, "_lock_fd", None) is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def ecosystem(self) -> Ecosystem:
        return self.ecosystem_file.model

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def missing_secrets(self, keys: Iterable[str]) -> list[str]:
        """The KEYS .env does not hold yet."""
        return [key for key in dict.fromkeys(keys) if key not in self.env]

    def ensure_secrets(self, keys: Iterable[str]) -> list[str]:
        """Generate each of KEYS that .env lacks (`contract.secret_keys` names those the desired
        state needs); existing ones are kept.

        Takes the workspace lock first (when .env lacks something), so two commands never generate
        the same secret twice. Returns the keys it generated.
        """
        keys = list(keys)
        if not self.missing_secrets(keys):
            return []
        borrowed = getattr(self, "_lock_fd", None) is None
        if borrowed:
            self.lock_for_changes()
        try:
            added = [key for key in self.missing_secrets(keys) if self.env.ensure_secret(key)]
            if added:
                self.env.save()
            return added
        finally:
            if borrowed:
                self.unlock()

    def record(self, values: dict[str, str | None]) -> None:
        """Save values a system handed back (None removes the key) in .env, atomically."""
        changed = False
        for key, value in values.items():
            changed = (self.env.remove(key) if value is None else self.env.set(key, value, replace=True)) or changed
        if changed:
            self.env.save()

    def secret(self, key: str) -> str:
        value = self.env.get(key) or os.environ.get(key)
        if not value:
            raise EcoctlError(f"{key} is not set in {self.env.path} or the environment: "
                              "run `ecoctl init --force .` in the ecosystem directory to generate missing secrets")
        return value

    def template_dirs(self) -> list[Path]:
        """A team's own templates (`templates_dir` in ecosystem.yaml), searched before the shipped ones."""
        own = self.ecosystem.templates_dir
        return [self.root / own] if own else []

    @cached_property
    def postgres(self) -> PostgresEndpoint:
        settings = self.ecosystem.core.postgres
        if settings.external:
            ext = settings.external
            return PostgresEndpoint(ext.host, ext.port, ext.admin_user, self.secret(ext.password_env),
                                    ext.sslmode)
        return PostgresEndpoint("127.0.0.1", settings.port, "postgres", self.secret("POSTGRES_PASSWORD"))

    @cached_property
    def authentik(self) -> AuthentikEndpoint:
        settings = self.ecosystem.core.authentik
        # an exported variable beats .env, as in docker compose (which reads the same variables)
        for where, source in (("the environment", os.environ), (self.env.path, self.env)):
            for key in dict.fromkeys(("AUTHENTIK_TOKEN", settings.token_env)):
                if value := source.get(key):
                    return AuthentikEndpoint(self.ecosystem.authentik_url, value, f"{key} in {where}")
        return AuthentikEndpoint(self.ecosystem.authentik_url, self.secret(settings.token_env),
                                 f"{settings.token_env} in the environment")

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ecosystem.core.monitoring.prometheus_port}"
