"""The programs supervisord runs for an ecosystem: PostgreSQL, Redis, Prometheus and each service."""

from __future__ import annotations

from pathlib import Path

from ecoctl import contract, names
from ecoctl.errors import EcoctlError, UsageError
from ecoctl.runtimes.local.supervisor import Program

# A service that exits sooner than this after a start counts as failing to start: supervisord
# retries it twice, then gives up (FATAL) instead of restarting a broken service forever.
SERVICE_STARTSECS = 10


class Programs:
    """Mixed into LocalRuntime: each program's argv, user, environment and folder."""

    def programs(self) -> list[Program]:
        """Every program of this ecosystem, as supervisord runs it."""
        programs = []
        if not self._postgres_external():
            programs.append(self._postgres_program())
        if self.binary("redis"):
            programs.append(self._redis_program())
        if self.ecosystem.core.monitoring.enabled and self.binary("prometheus"):
            programs.append(self._prometheus_program())
        programs += [self._service_program(name) for name in self.local_services()]
        return programs

    def _postgres_program(self) -> Program:
        from ecoctl.runtimes.local.postgres import SERVICE_USER, running_as_root

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
        from ecoctl.clients.prometheus_config import CONFIG_PATH

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

    def service_environment(self, name: str) -> dict[str, str]:
        """The service contract for a supervised process (see ecoctl.contract)."""
        return {**contract.environment(self.workspace, name, "local"), "PYTHONUNBUFFERED": "1"}

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

    def _service_program(self, name: str) -> Program:
        from ecoctl.template_run import local_run

        folder = self.service_dir(name)
        run = local_run(self.workspace, name)
        if run is not None:  # the template declares how it runs
            return Program(name, list(run.command), directory=str(folder),
                           environment=self.service_environment(name), startsecs=SERVICE_STARTSECS,
                           stopwaitsecs=15)
        python = self.venv_dir(name) / "bin" / "python"
        try:
            app = self.service_app(name)
        except EcoctlError:
            app = f"{names.sql_name(name)}.main:app"  # start_services reports the problem
        folder = self.service_dir(name)
        return Program(name, [str(python), "-m", "uvicorn", app, "--app-dir", str(folder),
                              "--host", "127.0.0.1", "--port", str(self.ecosystem.services[name].port)],
                       directory=str(folder), environment=self.service_environment(name),
                       startsecs=SERVICE_STARTSECS, stopwaitsecs=15)

    # -- virtual environments -------------------------------------------------------------
