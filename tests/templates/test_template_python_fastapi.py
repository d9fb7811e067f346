"""Acceptance: the default template rendered for `loyalty`, installed in a fresh venv, passes ITS tests
(against the real PostgreSQL fixture, so its database tests run too)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import venv
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ecoctl.service_templates import find_template, render_template
from tests.helpers import wait_until_answers

SERVICE = "loyalty"


@pytest.fixture
def service_database(pg):
    """A database owned by its own login role, as the postgres provider makes them (names unique to
    this test so they cannot clash with the provider's own tests on the shared server)."""
    name, user, password = "tpl_loyalty_db", "tpl_loyalty_user", secrets.token_urlsafe(18)
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        verifier = conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256").decode()
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(verifier)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(user)))
    try:
        yield {"DATABASE_HOST": pg.host, "DATABASE_PORT": str(pg.port), "DATABASE_NAME": name,
               "DATABASE_USER": user, "DATABASE_PASSWORD": password}
    finally:
        with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


def _install(python: Path, service_dir: Path) -> None:
    """pip into a fresh venv, driven by this interpreter's pip (no ensurepip: seconds faster)."""
    has_pip = _run([sys.executable, "-m", "pip", "--version"]).returncode == 0
    if has_pip:
        args = [sys.executable, "-m", "pip", "--python", str(python)]
    else:
        venv.create(python.parent.parent, with_pip=True, clear=False)
        args = [str(python), "-m", "pip"]
    result = _run([*args, "install", "--quiet", "--no-compile", "--disable-pip-version-check",
                   f"{service_dir}[test]"], timeout=600)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def test_rendered_service_passes_its_own_tests_in_a_fresh_venv(tmp_path, service_database):
    service_dir = tmp_path / "services" / SERVICE
    written = render_template(find_template("python-fastapi"), service_dir, {"service_name": SERVICE})
    assert service_dir / "tests" / "test_auth.py" in written

    venv_dir = tmp_path / "venv"
    venv.create(venv_dir, with_pip=False)
    python = venv_dir / "bin" / "python"
    _install(python, service_dir)

    env = {"PATH": f"{venv_dir / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(tmp_path),
           **service_database}
    # the venv is clean: ecoctl is not importable there
    assert _run([str(python), "-c", "import ecoctl"], cwd=tmp_path, env=env).returncode != 0
    result = _run([str(python), "-m", "pytest", "-p", "no:cacheprovider", "-v", "-rs"], cwd=service_dir,
                  env=env, timeout=300)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    assert "SKIPPED" not in report, report[-3000:]  # the database tests ran too
    for name in ("test_valid_token_is_accepted", "test_token_with_bad_signature_is_refused",
                 "test_expired_token_is_refused", "test_token_for_another_audience_is_refused",
                 "test_unknown_key_id_refetches_the_keys", "test_metrics_count_requests_by_route_template",
                 "test_health_is_503_without_database", "test_items_belong_to_the_token_subject",
                 "test_unknown_path_is_a_404_problem", "test_unexpected_error_is_a_500_problem_without_details"):
        assert f"::{name} PASSED" in report, f"{name} did not pass:\n{report[-3000:]}"

    _serve_over_http(python, tmp_path, env)


def _serve_over_http(python: Path, tmp_path: Path, env: dict[str, str]) -> None:
    """`python -m loyalty` (the Dockerfile's command) on loopback: healthy with its database, /me with a
    token signed by a key from its JWKS file, an item stored, metrics labelled by route template.
    (Token refusals, problem details and metric label names over HTTP: tests/contract.)"""
    import httpx
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.helpers import free_port

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key())), "kid": "k1", "use": "sig"}
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    issuer = "http://127.0.0.1:9000/application/o/loyalty/"
    port = free_port()
    env = {**env, "PORT": str(port), "HOST": "127.0.0.1", "OIDC_ISSUER": issuer, "OIDC_CLIENT_ID": "loyalty-cid",
           "OIDC_JWKS_FILE": str(tmp_path / "jwks.json")}
    token = jwt.encode({"sub": "alice", "aud": "loyalty-cid", "iss": issuer, "exp": int(time.time()) + 60},
                       private, algorithm="RS256", headers={"kid": "k1"})
    process = subprocess.Popen([str(python), "-m", "loyalty"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_answers(f"{base}/healthz", process, 30, "the rendered loyalty service")
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{base}/me", headers=auth).json()["sub"] == "alice"
        assert httpx.post(f"{base}/items", json={"name": "x"}, headers=auth).status_code == 201
        metrics = httpx.get(f"{base}/metrics").text
        assert 'http_requests_total{method="POST",path="/items",status="201"} 1.0' in metrics
        assert 'http_request_duration_seconds_bucket{le="0.001",method="GET",path="/healthz"}' in metrics
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
    assert "Application shutdown complete." in output, output[-3000:]  # a clean stop on SIGTERM
