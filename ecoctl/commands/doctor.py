"""`ecoctl doctor`: every prerequisite of this ecosystem checked, each with a one-line verdict and a fix.

A check is `ok`, `warn` (works, but less than it could: e.g. no promtool), `skip` (not needed here, or
only checkable once `ecoctl up` started the piece; an optional component whose binary is missing) or
`fail`; the command exits 0 unless one fails. What the runtime needs (an engine and its images, or
the binaries of the components it runs) is the runtime's own check list (`Runtime.doctor_checks`).
"""

from __future__ import annotations

import shutil
import socket
from typing import TYPE_CHECKING

from ecoctl import components
from ecoctl.errors import EcoctlError
from ecoctl.runtimes.base import Check

if TYPE_CHECKING:
    from ecoctl.workspace import Workspace

MIN_FREE_BYTES = 1 << 30
"""Below 1 GiB free, PostgreSQL or image builds fail half-way."""
LOW_FREE_BYTES = 5 << 30


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
        from ecoctl.runtimes import get_runtime

        self.workspace = workspace
        self.ecosystem = workspace.ecosystem
        self.runtime = get_runtime(workspace)
        self._running: bool | None = None
        self.checks: list[Check] = []

    def add(self, name: str, status: str, verdict: str, fix: str = "") -> None:
        self.checks.append(Check(name, status, verdict, fix))

    def running(self) -> bool:
        if self._running is None:
            try:
                self._running = self.runtime.is_running()
            except EcoctlError:
                self._running = False
        return self._running

    # -- ports --------------------------------------------------------------------------------------
    def wanted_ports(self) -> dict[int, str]:
        """Host port -> what needs it: the components this runtime runs, then each service."""
        ports = components.host_ports(self.ecosystem, self.runtime.components())
        for name, spec in self.ecosystem.services.items():
            if spec.pattern != "external":
                ports.setdefault(spec.port, name)
        return ports

    def ours(self, name: str, port: int) -> bool:
        """Whether this ecosystem's own NAME holds PORT."""
        if not self.running():
            return False
        try:
            return self.runtime.holds_port(name, port)
        except EcoctlError:
            return False

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
            if differs := self.ecosystem.postgres_version_differs(version):
                self.add("postgres-version", "warn", differs)
            self.check_public_access(conn, endpoint.user, superuser)
        except EcoctlError as exc:
            message = str(exc)
            self.add("postgres", "fail", message.split(": run")[0], "run" + message.split(": run", 1)[-1]
                     if ": run" in message else message)
        finally:
            conn.close()

    def check_data_layer(self) -> None:
        from ecoctl.commands.data_layer import doctor_checks

        self.checks += doctor_checks(self.workspace, self.running())

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
            self.add("authentik", "skip", "not used: the development sign-in stands in for it "
                                          "(`ecoctl token SERVICE`)")
            return
        if self.ecosystem.authentik_in_stack and not self.running():
            self.add("authentik", "skip", "runs in the stack: `ecoctl up` starts it")
            return
        from ecoctl.clients.authentik import AuthentikClient
        from ecoctl.errors import AuthentikError, AuthentikTokenRejected, Unreachable

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
            except AuthentikTokenRejected as exc:
                self.add("authentik", "fail", f"{base} does not know the API token (invalid or expired, "
                                              f"{exc.status})", f"set {client.token_source or 'the API token'} to a valid token "
                                              "(Admin > Directory > Tokens, intent API)")
                return
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

    # -- tools, disk --------------------------------------------------------------------------
    def check_tools(self) -> None:
        if shutil.which("promtool"):
            self.add("promtool", "ok", f"{shutil.which('promtool')} checks prometheus.yml before each change")
        else:
            self.add("promtool", "warn", "not on PATH: prometheus.yml changes are not checked first",
                     "apt-get install prometheus (ships promtool)")

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

    def check_certificates(self) -> None:
        """The CA's root and leaves: a warning from `certs.RENEW_DAYS` before any expires."""
        from ecoctl import certs

        found = certs.expiries(self.workspace.state_dir)
        if not found:
            self.add("certificates", "skip", "no ecosystem CA yet: `ecoctl apply` or `ecoctl up` creates it")
            return
        soon = [(expiry, expiry.days_left()) for expiry in found if expiry.days_left() < certs.RENEW_DAYS]
        if not soon:
            first = min(found, key=lambda expiry: expiry.not_after)
            self.add("certificates", "ok", f"the CA's {len(found)} certificate(s) are valid for "
                                           f"{first.days_left():.0f}+ days ({first.name} expires first)")
            return
        what = "; ".join(f"{expiry.name} {'expired' if days < 0 else f'expires in {days:.0f} days'} "
                         f"({expiry.not_after:%Y-%m-%d})" for expiry, days in soon)
        self.add("certificates", "warn", what, "run `ecoctl apply` (or `ecoctl up`): it renews them"
                 + ("; trust the new root again (`ecoctl ca export`)" if any(e.name == "root" for e, _ in soon) else ""))

    def run(self) -> list[Check]:
        try:
            self.checks += self.runtime.doctor_checks()
            self.check_certificates()
            self.check_ports()
            self.check_postgres()
            self.check_data_layer()
            self.check_authentik()
            self.check_tools()
            self.check_disk()
        finally:
            self.runtime.close()
        return self.checks


def doctor(workspace: "Workspace") -> list[Check]:
    return Doctor(workspace).run()
