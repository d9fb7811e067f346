"""Helpers for tests and benchmarks: a token issuer with its JWKS, a service database, a served app."""

from __future__ import annotations

import json
import secrets
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class TokenIssuer:
    """An RSA signing key published as a JWKS, minting access tokens like an OIDC issuer."""

    def __init__(self, issuer: str = "http://issuer.test/application/o/portfolio/", audience: str = "portfolio"):
        self.issuer, self.audience = issuer, audience
        self.keys: list[tuple[str, object]] = []
        self.rotate()

    def rotate(self) -> str:
        """Add a new signing key (the newest signs); return its kid."""
        from cryptography.hazmat.primitives.asymmetric import rsa

        kid = secrets.token_hex(8)
        self.keys.append((kid, rsa.generate_private_key(public_exponent=65537, key_size=2048)))
        return kid

    def jwks(self) -> dict:
        from jwt.algorithms import RSAAlgorithm

        keys = []
        for kid, private in self.keys:
            jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def mint(self, sub: str, *, scope: str = "openid profile", groups: list[str] | None = None,
             expires_in: int = 300, audience: str | None = None, issuer: str | None = None,
             key=None, kid: str | None = None, **claims) -> str:
        import jwt

        now = int(time.time())
        newest_kid, newest_key = self.keys[-1]
        payload = {"iss": issuer or self.issuer, "aud": audience or self.audience, "sub": sub,
                   "iat": now, "exp": now + expires_in, "scope": scope, **claims}
        if groups is not None:
            payload["groups"] = groups
        return jwt.encode(payload, key or newest_key, algorithm="RS256",
                          headers={"kid": kid or newest_kid})

    def headers(self, sub: str, **kwargs) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mint(sub, **kwargs)}"}


@contextmanager
def serve_jwks(issuer: TokenIssuer):
    """Serve the issuer's current JWKS over HTTP on loopback; yields the URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(issuer.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks/"
    finally:
        server.shutdown()
        server.server_close()


def create_service_database(admin_conninfo: str, dbname: str, owner: str, password: str) -> None:
    """What the postgres provider does for a service: a login role owning its own database."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone()
        verifier = conn.pgconn.encrypt_password(password.encode(), owner.encode(), b"scram-sha-256").decode()
        statement = "ALTER ROLE {} LOGIN PASSWORD {}" if exists else "CREATE ROLE {} LOGIN PASSWORD {}"
        conn.execute(sql.SQL(statement).format(sql.Identifier(owner), sql.Literal(verifier)))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(owner)))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(dbname)))


def provisioned_settings(pg, dbname: str, issuer: TokenIssuer, jwks_dir: Path, owner: str = "portfolio_user"):
    """Settings for a service on a fresh database owned by the login role `owner`, trusting `issuer`'s
    keys (`pg` is the test PostgreSQL: host, port, conninfo()). On a server that an ecosystem's tests
    use too, pass an owner of the tests' own: ecoctl refuses a `portfolio_user` it did not create."""
    from portfolio_service.settings import Settings

    password = secrets.token_urlsafe(16)
    create_service_database(pg.conninfo(), dbname, owner, password)
    jwks = issuer.write_jwks(jwks_dir / "jwks.json")
    return Settings(database_host=pg.host, database_port=pg.port, database_name=dbname,
                    database_user=owner, database_password=password,
                    oidc_issuer=issuer.issuer, oidc_audience=issuer.audience, oidc_jwks_file=str(jwks))


@contextmanager
def serve_app(app, host: str = "127.0.0.1"):
    """Run an ASGI app under a real uvicorn server in a thread; yields its base URL."""
    import socket

    import uvicorn

    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on such sockets (else Nagle adds ~40 ms a request)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((host, 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the service did not start (see the log above)")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
