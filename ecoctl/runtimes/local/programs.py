"""The programs supervisord runs for an ecosystem: the core components (see `core`) and each service."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ecoctl import components, contract, names
from ecoctl.errors import EcoctlError, UsageError
from ecoctl.runtimes.local.supervisor import Program

# A service that exits sooner than this after a start counts as failing to start: supervisord
# retries it twice, then gives up (FATAL) instead of restarting a broken service forever.
SERVICE_STARTSECS = 10
PROGRAM_WAIT = 30.0
"""Seconds a stage waits for a component to become healthy."""
RELOAD_WAIT = 5.0
"""Seconds a program is given to say it runs with its reloaded config (`Local.reloaded`)."""


class Programs:
    """Mixed into LocalRuntime: each program's argv, user, environment and folder."""

    def programs(self) -> list[Program]:
        """Every program of this ecosystem, as supervisord runs it: the core components this
        runtime runs (see `core`), then each service."""
        programs = [self.core_program(component) for component in self.components()]
        programs += [self._service_program(name) for name in self.local_services()]
        return programs

    def _postgres_program(self) -> Program:
        from ecoctl.runtimes.local.postgres import running_as_root

        server = self.postgres_server()
        argv = server.server_argv()
        user = None
        if running_as_root():
            # supervisord switches user itself, so its stop signal reaches the postmaster directly
            assert argv[:4] == ["runuser", "-u", server.user, "--"], argv
            argv, user = argv[4:], server.user
        return Program("postgres", argv, user=user, stopsignal=components.POSTGRES.local.stopsignal,
                       stopwaitsecs=60, startsecs=1,
                       environment={"HOME": "/nonexistent"} if user else {},
                       marks=(str(server.data_dir),))

    def reload_prometheus(self) -> bool:
        """SIGHUP through supervisord (XML-RPC `signalProcess`, like `supervisorctl signal HUP
        prometheus`) after refreshing its copy of the config, then wait until Prometheus reports
        a newer successful reload (`prometheus_config_last_reload_successful`). A Prometheus
        supervisord does not run is asked over HTTP as before; False when none answers."""
        from ecoctl.clients import prometheus

        url = self.workspace.prometheus_url
        name = components.PROMETHEUS.name
        info = self.supervisor.info(name) if self.supervisor.answers() else None
        if info is None or info["statename"] != "RUNNING":
            return prometheus.reload(url)
        wanted = self.core_program(components.PROMETHEUS).section(self.supervisor.log_file(name))
        if wanted not in self.supervisor.config_path.read_text():
            # its arguments changed (core.monitoring.prometheus_port): a signal cannot move its port,
            # so supervisord starts it again with them, and it reads the synced file as it starts
            self.sync_config(components.PROMETHEUS)
            self._converge_daemon()
            self._wait_until(name, timeout=60)
            return True
        before = prometheus.reload_state(url)
        if not self.reload_program(components.PROMETHEUS):
            return False
        prometheus.wait_reloaded(url, before)
        for component in components.reloaded_with_prometheus(self.ecosystem):
            if self.runs(component):  # its file is written with Prometheus's (Alertmanager's)
                self.reload_program(component)
        return True

    def _refresh_running_core(self, wait: bool = True) -> list[str]:
        """A running program whose config names the services (the sign-in's clients, the edge's
        routes) or whose certificate was renewed reads them again: reloaded when its recipe takes
        the change that way (`Local.reloads`: the sign-in's clients and users, its sessions kept),
        else restarted, and waited for unless WAIT is False (then the caller waits: see
        `restarted`). The names restarted."""
        if not self.supervisor.answers():
            return []
        restarted = []
        for component in self.components():
            recipe = component.local
            if self.embedded(component) or not (recipe.python_module or recipe.config is not None):
                continue
            running = (self.supervisor.info(component.name) or {}).get("statename") == "RUNNING"
            if not running or not self.prepared(component):
                continue
            self._restart_if_running(component.name, wait=False)
            restarted.append(component.name)
            if wait:
                self._wait_until(component.name, timeout=PROGRAM_WAIT)
        return restarted

    def prepared(self, component) -> bool:
        """Its files prepared (`prepare`): True when what changed is read only by a restart; False
        when nothing changed, or when it runs and took its new config by its reload signal."""
        config = self.place(component).config if component.local.reloads else None
        before = config.read_text() if config is not None and config.is_file() else ""
        changed = self.prepare(component)
        return bool(changed) and not (changed == {"config"} and self._reloaded(component, before))

    def _reloaded(self, component, before: str) -> bool:
        """Its new config (BEFORE: the one it runs with) taken by its reload signal while it runs,
        when its recipe allows that change, and confirmed by it (`Local.reloaded`); False: restart it."""
        import hashlib

        recipe, place = component.local, self.place(component)
        after = place.config.read_text()
        if not (before and recipe.reloads and recipe.reloads(before, after)):
            return False
        if not self.supervisor.signal_program(component.name, recipe.reload_signal):
            return False
        if recipe.reloaded and not self._runs_with(component, hashlib.sha256(after.encode()).hexdigest()):
            return False
        self.progress(f"{component.name} read its new config")
        return True

    def _runs_with(self, component, digest: str) -> bool:
        """Whether it says (`Local.reloaded`) it runs with the config of DIGEST, within RELOAD_WAIT."""
        import json
        import urllib.request

        place = self.place(component)
        url = f"http://{self.address_of(component.name)}:{place.port}{component.local.reloaded}"
        deadline = time.monotonic() + RELOAD_WAIT
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if json.loads(answer.read()).get("config") == digest:
                        return True
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        return False

    # -- services -------------------------------------------------------------------------
    def build_dir(self, name: str) -> Path:
        """Where a service's declared build puts its output, readable by the programs' user."""
        base = self.program_home() if self.home_is_shared() else self.workspace.state_dir
        return base / "build" / name

    def local_run(self, name: str):
        """How the service's template says to build and run it (None: a plain Python service)."""
        from ecoctl.template_run import local_run

        return local_run(self.workspace, name, self.build_dir(name), self.account.service_python())

    def venv_dir(self, name: str) -> Path:
        base = self.program_home() if self.home_is_shared() else self.workspace.state_dir
        return base / "venvs" / name

    def service_dir(self, name: str) -> Path:
        """The service's folder in the ecosystem (what the user edits)."""
        return self.workspace.root / "services" / name

    def service_run_dir(self, name: str) -> Path:
        """Where the service runs from: its folder, or a read-only copy the programs' user can
        reach when it cannot reach the ecosystem's folder."""
        if self.home_is_shared():
            return self.program_home() / "services" / name
        return self.service_dir(name)

    def copy_service(self, name: str) -> None:
        """The copy of NAME's folder it runs from when its user cannot reach the ecosystem's folder:
        root's, readable by that service alone (its group, 0750), in a folder only root lists."""
        from ecoctl.runtimes.local.accounts import copy_readable_tree

        folder, reader = self.service_run_dir(name), self.program_account(name)
        if reader is self.account:  # one user runs every program: the folder is root's and its group's
            self.account.shared_folder(folder.parent)
            copy_readable_tree(self.service_dir(name), folder)
            return
        folder.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        os.chmod(folder.parent, 0o711)
        copy_readable_tree(self.service_dir(name), folder, group=reader.ids()[1])

    def copy_is_current(self, name: str) -> bool:
        """Whether NAME's copy is readable by its user as it is now (who may have been made again)."""
        reader = self.program_account(name)
        if reader is self.account:
            return True
        try:
            return os.stat(self.service_run_dir(name)).st_gid == reader.ids()[1]
        except FileNotFoundError:
            return False

    def service_environment(self, name: str) -> dict[str, str]:
        """The service contract for a supervised process (see ecoctl.contract)."""
        return {**contract.environment(self.workspace, name, "local"), "PYTHONUNBUFFERED": "1"}

    def service_app(self, name: str) -> str:
        """The ASGI app uvicorn serves: `[tool.ecoctl] app` in the service's pyproject.toml, else
        `<package>.main:app` for the one package under services/NAME/ holding a main.py
        (`<name with _>` first)."""
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
        preferred = [names.sql_name(name)]
        found = sorted(path.parent.name for path in folder.glob("*/main.py")
                       if (path.parent / "__init__.py").exists())
        for package in preferred + found:
            if package in found:
                return f"{package}.main:app"
        raise EcoctlError(f"services/{name} has no <package>/main.py: add one defining `app`, or set "
                          "`app = \"module:app\"` under [tool.ecoctl] in its pyproject.toml")

    def _service_program(self, name: str) -> Program:
        run = self.local_run(name)
        if run is not None:  # the template declares how it runs
            return Program(name, list(run.command), directory=str(self.service_run_dir(name)),
                           environment=self.service_environment(name), startsecs=SERVICE_STARTSECS,
                           stopwaitsecs=15, user=self.program_account(name).name, marks=(str(self.build_dir(name)),))
        venv = self.venv_dir(name)
        try:
            app = self.service_app(name)
        except EcoctlError:
            app = f"{names.sql_name(name)}.main:app"  # start_services reports the problem
        folder = self.service_run_dir(name)
        return Program(name, [str(venv / "bin" / "python"), "-m", "uvicorn", app, "--app-dir", str(folder),
                              "--host", "127.0.0.1", "--port", str(self.ecosystem.services[name].port)],
                       directory=str(folder), environment=self.service_environment(name),
                       startsecs=SERVICE_STARTSECS, stopwaitsecs=15, user=self.program_account(name).name,
                       marks=(str(venv),))

    # -- virtual environments -------------------------------------------------------------
