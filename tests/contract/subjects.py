"""The services the contract suite runs against, and how to start one as a real process.

A subject declares only two things: how to start it (`start(workdir) -> Command`, called once per
test session; it may build or install into `workdir`) and one GET path that needs a token. The
suite gives every subject the same environment, the one ecoctl gives a service (see
`ecoctl/runtimes/local.py` `service_environment`): PORT, DATABASE_HOST/PORT/NAME/USER/PASSWORD,
OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_JWKS_URL (the issuer's JWKS served over loopback HTTP).

Adding a subject is one entry in SUBJECTS. For a Python service folder you already have (e.g. one
`ecoctl upgrade` brought to a new template version):

    Subject("loyalty", "/me", start=python_service(folder, "loyalty"))
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.helpers import uv_binary, uv_env

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Command:
    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    """Variables this subject needs besides the contract's (e.g. PATH for its venv)."""


@dataclass(frozen=True)
class Subject:
    name: str
    protected_path: str
    """A GET path that answers 200 to any valid token (and 401 without one)."""
    start: Callable[[Path], Command]
    data_path: str = ""
    """A path whose GET reads the database and whose POST takes a JSON body (both need a token)."""
    docs: tuple[str, ...] = ()
    """The documentation routes it serves without a token (e.g. /openapi.json)."""


def portfolio(workdir: Path) -> Command:
    """The core service as the local runtime runs it: uvicorn with --app-dir (this interpreter has its
    dependencies: the test extras)."""
    return Command([sys.executable, "-m", "uvicorn", "portfolio_service.main:app",
                    "--app-dir", str(REPO / "templates" / "portfolio" / "files"), "--host", "127.0.0.1",
                    "--port", "{PORT}", "--log-level", "warning"], cwd=workdir)


def python_template(template: str, service: str = "contracted") -> Callable[[Path], Command]:
    """Render `template` (a name, or a template folder) with ecoctl's renderer, then start it as
    `python_service` does."""

    def start(workdir: Path) -> Command:
        from ecoctl.service_templates import find_template, render_template, template_variables

        found = find_template(template)
        folder = workdir / "services" / service
        render_template(found, folder, {"service_name": service})
        package = template_variables(found, {"service_name": service})["package_name"]
        return python_service(folder, package)(workdir)

    return start


def python_service(folder: Path, package: str) -> Callable[[Path], Command]:
    """A Python service folder (rendered, upgraded, edited: anything pip installs) in its own venv
    (uv), started the way the template's Dockerfile does: `python -m PACKAGE` listening on $PORT."""

    def start(workdir: Path) -> Command:
        venv = workdir / "venv"
        uv = uv_binary()
        for args in ([uv, "venv", "-q", str(venv)],
                     [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), str(folder)]):
            result = subprocess.run(args, capture_output=True, text=True, timeout=600, env=uv_env())
            assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stderr[-3000:]}"
        return Command([str(venv / "bin" / "python"), "-m", package], cwd=workdir,
                       env={"HOST": "127.0.0.1", "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}"})

    return start


def go_template(template: str, service: str = "contracted") -> Callable[[Path], Command]:
    """Render a Go template with ecoctl's renderer and build it once (the Go caches are the user's)."""

    def start(workdir: Path) -> Command:
        from ecoctl.service_templates import find_template, render_template

        go = shutil.which("go")
        if go is None:
            import pytest

            pytest.skip("go is not on PATH: the go-gin subjects need its toolchain to build (install Go; the Python subjects still run)")
        folder = workdir / "services" / service
        render_template(find_template(template), folder, {"service_name": service})
        binary = workdir / "bin" / "service"
        env = {**os.environ, "GOFLAGS": "-buildvcs=false", "GOTOOLCHAIN": "local"}
        result = subprocess.run([go, "build", "-trimpath", "-o", str(binary), "."], cwd=folder, env=env,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"go build failed:\n{result.stderr[-3000:]}"
        return Command([str(binary)], cwd=workdir, env={"HOST": "127.0.0.1"})

    return start


def upgraded_service(root: Path, service: str, template: str = "python-fastapi", from_version: int = 1,
                     edit: Callable[[Path], None] | None = None) -> Path:
    """An ecosystem in ROOT whose SERVICE was rendered by TEMPLATE version FROM_VERSION before ecoctl
    recorded templates (as main's python-fastapi v1 did), edited by the team with `edit(folder)`, then
    adopted and upgraded by the real `ecoctl upgrade SERVICE --adopt-from FROM_VERSION`. Returns its folder."""
    from ecoctl.commands.init import init_ecosystem
    from ecoctl.service_templates import service_answers
    from ecoctl.service_templates import render_template
    from ecoctl.template_sources import at_version, resolve
    from ecoctl.template_record import remove_pristine
    from ecoctl.workspace import Workspace
    from tests.helpers import run_ecoctl

    init_ecosystem(root, runtime="local", without=("web",))
    added = run_ecoctl("add-service", service, "--template", template, "--no-apply", "--port", "8080",
                       cwd=root)  # not the host's next free port
    assert added.returncode == 0, added.stderr
    folder = root / "services" / service
    shutil.rmtree(folder)  # rendered again as the old version made it, without a record
    remove_pristine(root, service)
    old = at_version(resolve(template), from_version)
    assert old is not None, f"{template} keeps no version {from_version}"
    render_template(old, folder, service_answers(Workspace.open(root).ecosystem, service))
    if edit is not None:
        edit(folder)
    upgraded = run_ecoctl("upgrade", service, "--adopt-from", str(from_version), cwd=root)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    return folder


def python_upgraded(template: str = "python-fastapi", from_version: int = 1,
                    service: str = "upgraded") -> Callable[[Path], Command]:
    """`python_service` for a service rendered from an old version and brought up by `ecoctl upgrade`."""

    def start(workdir: Path) -> Command:
        from ecoctl.service_templates import template_variables
        from ecoctl.template_sources import resolve

        folder = upgraded_service(workdir / "eco", service, template, from_version)
        package = template_variables(resolve(template).template, {"service_name": service})["package_name"]
        return python_service(folder, package)(workdir)

    return start


FASTAPI_DOCS = ("/openapi.json", "/docs")
SUBJECTS = [
    Subject("portfolio", "/portfolios", start=portfolio, data_path="/portfolios", docs=FASTAPI_DOCS),
    Subject("python-fastapi", "/me", start=python_template("python-fastapi"), data_path="/items", docs=FASTAPI_DOCS),
    Subject("go-gin", "/items", start=go_template("go-gin"), data_path="/items"),
    Subject("python-fastapi-v1-upgraded", "/me", start=python_upgraded("python-fastapi", 1), data_path="/items",
            docs=FASTAPI_DOCS),
]


class Issuer:
    """An OIDC issuer on loopback: its JWKS at `<issuer>jwks/`, and tokens signed with its RSA key."""

    def __init__(self, name: str, audience: str):
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.audience, self.kid = audience, secrets.token_hex(6)
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path = f"/application/o/{name}/"
        jwks = json.dumps({"keys": [self.jwk()]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != path + "jwks/":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(jwks)))
                self.end_headers()
                self.wfile.write(jwks)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.issuer = f"http://127.0.0.1:{self._server.server_port}{path}"
        self.jwks_url = self.issuer + "jwks/"

    def jwk(self) -> dict[str, Any]:
        from jwt.algorithms import RSAAlgorithm

        return {**json.loads(RSAAlgorithm.to_jwk(self.private.public_key())), "kid": self.kid, "use": "sig",
                "alg": "RS256"}

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Valid claims; an override of None drops that claim."""
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.audience, "sub": "contract-user", "iat": now, "exp": now + 300,
                  **overrides}
        return {key: value for key, value in claims.items() if value is not None}

    def token(self, key=None, **overrides: Any) -> str:
        import jwt

        return jwt.encode(self.claims(**overrides), key or self.private, algorithm="RS256",
                          headers={"kid": self.kid})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def create_database(admin_conninfo: str, name: str, owner: str, password: str) -> None:
    """What the postgres provider makes for a service: a login role owning its own database."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(owner)))
        verifier = conn.pgconn.encrypt_password(password.encode(), owner.encode(), b"scram-sha-256").decode()
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(owner), sql.Literal(verifier)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))


def drop_database(admin_conninfo: str, name: str, owner: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(owner)))


def set_login(admin_conninfo: str, database: str, role: str, allowed: bool) -> None:
    """Let `role` log in again, or stop it: NOLOGIN plus its open sessions ended (the database is gone
    as far as the service can tell)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} " + ("LOGIN" if allowed else "NOLOGIN")).format(sql.Identifier(role)))
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(subject: Subject, command: Command, server, logs: Path, prefix: str) -> Iterator[Running]:
    """SUBJECT running with the contract's environment: its own database and role on SERVER (a
    PostgresServer), named PREFIX-<subject>, and an issuer of its own; healthy, with `client` (an
    httpx.Client on its URL), `issuer`, `database` and `role` set. Stopped and dropped afterwards."""
    import httpx

    from ecoctl import names
    from tests.helpers import wait_until_answers

    sql = names.sql_name(f"{prefix}-{subject.name}")
    database, role, password = f"{sql}_db", f"{sql}_user", secrets.token_urlsafe(18)
    create_database(server.conninfo(), database, role, password)
    issuer = Issuer(subject.name, audience=f"{subject.name}-client-id")
    # a web app granted this API, as Authentik issues its tokens: its own issuer, its client id as `aud`
    web_app = Issuer(f"{subject.name}-web", audience=f"{subject.name}-web")
    env = {"PORT": str(free_port()), "DATABASE_HOST": server.host, "DATABASE_PORT": str(server.port),
           "DATABASE_NAME": database, "DATABASE_USER": role, "DATABASE_PASSWORD": password,
           "OIDC_ISSUER": issuer.issuer, "OIDC_CLIENT_ID": issuer.audience, "OIDC_JWKS_URL": issuer.jwks_url,
           "OIDC_ACCEPTED_CLIENTS": json.dumps([{"issuer": web_app.issuer, "audience": web_app.audience,
                                                 "jwks_url": web_app.jwks_url}])}
    running = Running(subject, command, env, logs / f"{subject.name}.log")
    try:
        try:
            wait_until_answers(f"{running.url}/healthz", running.process, 60, subject.name)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{running.output()}") from None
        with httpx.Client(base_url=running.url, timeout=10) as client:
            running.client, running.issuer, running.database, running.role = client, issuer, database, role
            running.web_app = web_app
            yield running
    finally:
        running.stop()
        issuer.close()
        web_app.close()
        drop_database(server.conninfo(), database, role)


class Running:
    """A subject started as a process with the contract's environment; stopped by its PID."""

    def __init__(self, subject: Subject, command: Command, env: dict[str, str], log: Path):
        self.subject, self.log_path = subject, log
        self.url = f"http://127.0.0.1:{env['PORT']}"
        argv = [arg.replace("{PORT}", env["PORT"]) for arg in command.argv]
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
                "PYTHONUNBUFFERED": "1"}
        self._log = open(log, "wb")
        self.process = subprocess.Popen(argv, cwd=command.cwd, env={**base, **env, **command.env},
                                        stdout=self._log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()
