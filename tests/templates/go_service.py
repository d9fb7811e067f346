"""Helpers for the go-gin template tests: render it, give it a database, serve a JWKS, mint tokens,
build and start the binary. Also used by bench/template_throughput.py."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SERVICE = "loyalty"
ISSUER = "http://127.0.0.1:9000/application/o/loyalty/"
AUDIENCE = "loyalty-cid"


def go_binary() -> str | None:
    return shutil.which("go")


def go_env(**extra: str) -> dict[str, str]:
    """The environment for `go`: the user's module and build caches (kept between runs), no VCS stamping."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "OIDC_", "REDIS_"))}
    env.setdefault("GOFLAGS", "-buildvcs=false")
    env["GOTOOLCHAIN"] = "local"
    env.update(extra)
    return env


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def render(target: Path, template: str = "go-gin", service: str = SERVICE) -> Path:
    from ecoctl.service_templates import find_template, render_template

    render_template(find_template(template), target, {"service_name": service})
    return target


def build(service_dir: Path, output: Path) -> Path:
    result = run(["go", "build", "-trimpath", "-o", str(output), "."], service_dir, go_env())
    assert result.returncode == 0, f"go build failed:\n{result.stdout}\n{result.stderr}"
    return output


class ServiceDatabase:
    """A database owned by its own login role, as the postgres provider makes them."""

    def __init__(self, pg, name: str, user: str):
        self.pg, self.name, self.user, self.password = pg, name, user, secrets.token_urlsafe(18)

    def create(self) -> "ServiceDatabase":
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.pg.conninfo(), autocommit=True) as conn:
            verifier = conn.pgconn.encrypt_password(self.password.encode(), self.user.encode(),
                                                    b"scram-sha-256").decode()
            self._drop(conn)
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(self.user),
                                                                             sql.Literal(verifier)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(self.name),
                                                                       sql.Identifier(self.user)))
        return self

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.pg.conninfo(), autocommit=True) as conn:
            self._drop(conn)

    def _drop(self, conn) -> None:
        from psycopg import sql

        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(self.user)))

    @property
    def env(self) -> dict[str, str]:
        return {"DATABASE_HOST": self.pg.host, "DATABASE_PORT": str(self.pg.port), "DATABASE_NAME": self.name,
                "DATABASE_USER": self.user, "DATABASE_PASSWORD": self.password, "DATABASE_SSLMODE": "disable"}


class Keys:
    """An RS256 signing key served as a JWKS over loopback HTTP (and written to a file), plus an
    unpublished key for bad signatures."""

    def __init__(self, folder: Path):
        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key())), "kid": "k1",
               "use": "sig", "alg": "RS256"}
        self.document = json.dumps({"keys": [jwk]}).encode()
        self.file = folder / "jwks.json"
        self.file.write_bytes(self.document)
        document = self.document

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(document)))
                self.end_headers()
                self.wfile.write(document)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def token(self, *, key=None, alg: str = "RS256", kid: str = "k1", **claims) -> str:
        import jwt

        body = {"sub": "alice", "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 300}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.private, algorithm=alg, headers={"kid": kid})


def unsigned_token(**claims) -> str:
    """An `alg: none` token (PyJWT refuses to make one)."""
    import base64

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    body = {"sub": "alice", "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 300, **claims}
    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': 'k1'})}.{part(body)}."


def service_env(database: dict[str, str], port: int, jwks: dict[str, str]) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
            "PORT": str(port), "HOST": "127.0.0.1", "OIDC_ISSUER": ISSUER, "OIDC_CLIENT_ID": AUDIENCE,
            **jwks, **database}


def start(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    handle = open(log, "wb")
    try:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)
    finally:
        handle.close()
