"""Acceptance: the go-gin template rendered for `loyalty` passes `go vet` and its own `go test` (with
its database tests run against the real PostgreSQL fixture), and its binary, started as the local
runtime would start it, keeps the service contract over loopback HTTP.

Needs `go` on PATH; the module and build caches are the user's (kept between runs)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from go_service import (AUDIENCE, SERVICE, Keys, ServiceDatabase, build, go_binary,  # noqa: E402
                        go_env, render, run, service_env, start, unsigned_token)
from tests.helpers import wait_until_answers  # noqa: E402

pytestmark = pytest.mark.skipif(go_binary() is None, reason="`go` is not on PATH: install Go 1.26 to test "
                                                            "the go-gin template")


@pytest.fixture(scope="module")
def service_dir(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("services") / SERVICE)


@pytest.fixture(scope="module")
def database(pg):
    db = ServiceDatabase(pg, "tpl_go_loyalty_db", "tpl_go_loyalty_user").create()
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture(scope="module")
def binary(service_dir, tmp_path_factory) -> Path:
    return build(service_dir, tmp_path_factory.mktemp("bin") / SERVICE)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    keys = Keys(tmp_path_factory.mktemp("jwks"))
    yield keys
    keys.close()


@pytest.fixture(scope="module")
def service(binary, database, keys, tmp_path_factory):
    """The binary serving on loopback with its database and the JWKS over HTTP."""
    from tests.helpers import free_port

    folder = tmp_path_factory.mktemp("run")
    port = free_port()
    process = start([str(binary)], service_env(database.env, port, {"OIDC_JWKS_URL": keys.url}), folder,
                    folder / "service.log")
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/healthz", process, 30, "the rendered go-gin service")
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)


def test_rendered_service_passes_go_vet_and_its_own_tests(service_dir, database):
    files = {p.relative_to(service_dir).as_posix() for p in service_dir.rglob("*") if p.is_file()}
    for expected in ("main.go", "go.mod", "go.sum", "handlers/items.go", "models/items.go", "middleware/auth.go",
                     "metrics/metrics.go", "db/db.go", "db/migrations/0001_items.sql", "Dockerfile", "README.md"):
        assert expected in files
    assert (service_dir / "go.mod").read_text().startswith(f"module {SERVICE}\n")

    vet = run(["go", "vet", "./..."], service_dir, go_env())
    assert vet.returncode == 0, vet.stdout + vet.stderr
    # go.mod/go.sum are complete: -mod=readonly fails on anything missing instead of fixing it
    result = run(["go", "test", "-mod=readonly", "-count=1", "-v", "./..."], service_dir,
                 go_env(**database.env))
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    assert "--- SKIP" not in report, report[-3000:]  # the database tests ran too
    for name in ("TestValidTokensAreAccepted", "TestBadTokensAreRefused", "TestUnknownKeyIDRefetchesTheKeys",
                 "TestMetricsCountRequestsByRouteTemplate", "TestRouterErrorsAreProblems",
                 "TestItemsBelongToTheTokenSubject", "TestMigrationsRunOnceUnderTheLock", "TestItemsInPostgres",
                 "TestSecretsFromFiles"):
        assert f"--- PASS: {name} " in report, f"{name} did not pass:\n{report[-3000:]}"


def test_health_and_authenticated_calls(service, keys):
    import httpx

    health = httpx.get(f"{service}/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok", "service": SERVICE, "database": "ok"}
    auth = {"Authorization": f"Bearer {keys.token()}"}
    assert httpx.get(f"{service}/me", headers=auth).json()["sub"] == "alice"
    created = httpx.post(f"{service}/items", json={"name": "from pytest"}, headers=auth)
    assert created.status_code == 201 and created.json()["owner"] == "alice"
    listed = httpx.get(f"{service}/items", headers=auth)
    assert listed.status_code == 200 and [i["name"] for i in listed.json()] == ["from pytest"]
    other = {"Authorization": f"Bearer {keys.token(sub='bob')}"}
    assert httpx.get(f"{service}/items/{created.json()['id']}", headers=other).status_code == 404


@pytest.mark.parametrize("case", ["no token", "bad signature", "expired", "wrong audience", "wrong issuer",
                                  "alg none", "alg HS256", "empty sub", "no sub"])
def test_bad_tokens_are_401_problems(service, keys, case):
    import httpx

    tokens = {
        "no token": None,
        "bad signature": keys.token(key=keys.stranger),
        "expired": keys.token(exp=int(time.time()) - 120),
        "wrong audience": keys.token(aud="another-service"),
        "wrong issuer": keys.token(iss="http://127.0.0.1:9000/application/o/other/"),
        "alg none": unsigned_token(),
        "alg HS256": keys.token(key="a-shared-secret-that-is-long-enough-for-hs256", alg="HS256"),
        "empty sub": keys.token(sub=""),
        "no sub": keys.token(sub=None),
    }
    token = tokens[case]
    response = httpx.get(f"{service}/items", headers={"Authorization": f"Bearer {token}"} if token else {})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith(f'Bearer realm="{SERVICE}"')
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 401 and problem["title"] == "Unauthorized" and problem["detail"]


def test_router_errors_are_problems(service, keys):
    import httpx

    for method, path, status in [("GET", "/no/such/path", 404), ("DELETE", "/items", 405)]:
        response = httpx.request(method, f"{service}{path}")
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == status and response.json()["type"] == "about:blank"


def test_metrics_have_the_python_templates_names_and_labels(service, keys):
    import httpx

    auth = {"Authorization": f"Bearer {keys.token()}"}
    httpx.get(f"{service}/items/999999", headers=auth)
    httpx.get(f"{service}/items/1")  # refused: still labelled with its route
    httpx.get(f"{service}/wp-admin")
    metrics = httpx.get(f"{service}/metrics").text
    for line in ('http_requests_total{method="GET",path="/items/{item_id}",status="404"}',
                 'http_requests_total{method="GET",path="/items/{item_id}",status="401"}',
                 'http_requests_total{method="GET",path="unmatched",status="404"}',
                 'http_requests_total{method="GET",path="/healthz",status="200"}',
                 'http_request_duration_seconds_bucket{method="GET",path="/healthz",le="0.001"}',
                 "# TYPE http_request_duration_seconds histogram",
                 "# TYPE items_created_total counter"):
        assert line in metrics, f"{line} missing from /metrics"


def test_health_is_503_problem_without_database_and_sigterm_exits_0(binary, keys, tmp_path):
    """Started with its database away (a closed port), as on a cold start: it serves, /healthz is a 503
    problem; SIGTERM then stops it cleanly with exit code 0. The JWKS comes from a file (the local runtime)."""
    import httpx

    from tests.helpers import free_port

    port = free_port()
    database = {"DATABASE_HOST": "127.0.0.1", "DATABASE_PORT": str(free_port()), "DATABASE_PASSWORD_FILE":
                str(tmp_path / "password")}
    (tmp_path / "password").write_text("unused\n")
    process = start([str(binary)], service_env(database, port, {"OIDC_JWKS_FILE": str(keys.file)}), tmp_path,
                    tmp_path / "service.log")
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                response = httpx.get(f"{base}/healthz", timeout=10)
                break
            except httpx.TransportError:
                assert process.poll() is None, (tmp_path / "service.log").read_text()
                time.sleep(0.1)
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["database"] == "unavailable"
        assert httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {keys.token()}"}).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
    log = (tmp_path / "service.log").read_text()
    assert code == 0, log
    assert "shutdown complete" in log


def test_bad_configuration_is_one_line_and_non_zero(binary, tmp_path):
    result = subprocess.run([str(binary)], env={"PATH": "/usr/bin:/bin", "OIDC_CLIENT_ID": AUDIENCE},
                            capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"{SERVICE}: OIDC_ISSUER is not set "
                                                  "(e.g. http://authentik:9000/application/o/NAME/)"]
    healthcheck = subprocess.run([str(binary), "healthcheck"], env={"PORT": "1"}, capture_output=True, text=True,
                                 timeout=30)
    assert healthcheck.returncode == 1 and "healthcheck:" in healthcheck.stderr
