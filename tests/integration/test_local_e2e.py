"""The README's main job through the real CLI, on the embedded local runtime: init -> up -> token ->
add-service -> down -> up (data kept) -> a hand-made role refused by up, taken over by up --adopt ->
down --volumes. Real supervisord, PostgreSQL, uvicorn."""

import json
import os
import shutil
import socket

import httpx
import psycopg
import pytest

from ecoctl.support.envfile import EnvFile
from tests.helpers import free_edge_ports, free_port
from tests.helpers import run_ecoctl


def ours(root) -> list[str]:
    """Processes whose command line mentions this ecosystem's directory."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(root) in cmdline and pid != str(os.getpid()):
            found.append(cmdline)
    return found


@pytest.fixture
def demo(tmp_path):
    assert run_ecoctl("init", "demo", "--runtime", "local", "--without", "web", cwd=tmp_path).returncode == 0
    root = tmp_path / "demo"
    ports = {key: free_port() for key in ("pg", "redis", "prom", "portfolio", "loyalty", "rewards", "audit")}
    text = (root / "ecosystem.yaml").read_text()
    text = text.replace("    port: 5432", f"    port: {ports['pg']}").replace("    port: 6379", f"    port: {ports['redis']}")
    text = text.replace("    port: 9000", f"    port: {free_port()}")  # the development sign-in's
    text = text.replace("prometheus_port: 9090", f"prometheus_port: {ports['prom']}")
    text = text.replace("    port: 8000", f"    port: {ports['portfolio']}")
    (root / "ecosystem.yaml").write_text(free_edge_ports(text))
    yield root, ports
    run_ecoctl("down", "--volumes", "--yes", cwd=root)


def test_local_stack_end_to_end(demo):
    root, ports = demo
    up = run_ecoctl("up", "--json", cwd=root, timeout=600)
    assert up.returncode == 0, up.stderr[-3000:]
    summary = json.loads(up.stdout)
    assert {s["name"]: s["health"] for s in summary["services"]} == {"portfolio": "healthy"}
    portfolio = f"http://127.0.0.1:{ports['portfolio']}"
    assert httpx.get(f"{portfolio}/healthz").status_code == 200
    assert httpx.get(f"{portfolio}/portfolios").status_code == 401
    token = run_ecoctl("token", "portfolio", "--user", "dev", cwd=root).stdout.strip()
    assert token.count(".") == 2  # signed in through the development sign-in's form
    auth = {"Authorization": f"Bearer {token}"}
    created = httpx.post(f"{portfolio}/portfolios", json={"name": "Retirement", "currency": "EUR"}, headers=auth)
    assert created.status_code == 201, created.text
    assert httpx.get(f"{portfolio}/portfolios", headers=auth).json()["total"] == 1

    again = run_ecoctl("up", "--json", cwd=root, timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False

    added = run_ecoctl("add-service", "loyalty", "--port", str(ports["loyalty"]), "--reads", "portfolio",
                       "--json", cwd=root, timeout=600)
    assert added.returncode == 0, added.stderr[-3000:]
    assert json.loads(added.stdout)["health"] == "healthy"
    assert httpx.get(f"http://127.0.0.1:{ports['loyalty']}/healthz").status_code == 200
    env = EnvFile(root / ".env")
    with psycopg.connect(host="127.0.0.1", port=ports["pg"], dbname="loyalty_db", user="loyalty_user",
                         password=env.get("LOYALTY_DB_PASSWORD")) as conn:
        assert conn.execute("select current_database()").fetchone() == ("loyalty_db",)
    assert "job_name: loyalty" in (root / "monitoring/prometheus/prometheus.yml").read_text()
    go = shutil.which("go") is not None
    if go:
        check_go_service(root, ports, env)

    status = json.loads(run_ecoctl("status", "--json", cwd=root).stdout)
    states = {c["name"]: c["state"] for c in status["components"]}
    assert states["portfolio"] == states["loyalty"] == states["postgres"] == "running"
    assert states.get("rewards") == ("running" if go else None)
    assert status["drift"] == []

    down = run_ecoctl("down", cwd=root)
    assert down.returncode == 0, down.stderr
    assert ours(root) == []
    for port in (ports["pg"], ports["portfolio"], ports["loyalty"], ports["rewards"], ports["prom"]):
        with pytest.raises(OSError):  # nothing listens any more, wherever its data lives
            socket.create_connection(("127.0.0.1", port), timeout=1).close()

    back = run_ecoctl("up", "--json", cwd=root, timeout=600)
    assert back.returncode == 0, back.stderr[-3000:]
    assert httpx.get(f"{portfolio}/portfolios", headers=auth).json()["total"] == 1  # the data survived
    check_up_adopts_only_when_asked(root, ports, env)

    wiped = run_ecoctl("down", "--volumes", cwd=root)
    assert wiped.returncode == 2 and "--yes" in wiped.stderr  # no TTY: refuses to delete data unasked
    if not go:  # said at the end, so a machine without Go still checks every other stage
        pytest.skip("go is not installed: every stage ran except the go-gin service's (install Go to run it)")


def check_up_adopts_only_when_asked(root, ports, env) -> None:
    """A role with a new service's name that somebody made by hand: `up` refuses it (one line, exit 1,
    nothing of the service provisioned), `up --adopt` takes it over and starts the service."""
    admin = dict(host="127.0.0.1", port=ports["pg"], user="postgres", password=env.get("POSTGRES_PASSWORD"))
    with psycopg.connect(**admin, dbname="postgres", autocommit=True) as conn:
        conn.execute("CREATE ROLE audit_user LOGIN CREATEROLE PASSWORD 'hand-made'")
    added = run_ecoctl("add-service", "audit", "--port", str(ports["audit"]), "--no-apply", cwd=root)
    assert added.returncode == 0, added.stderr
    refused = run_ecoctl("up", cwd=root, timeout=300)
    errors = [line for line in refused.stderr.splitlines() if not line.startswith("> ")]  # (stage lines)
    assert refused.returncode == 1 and len(errors) == 1, refused.stderr
    assert "role audit_user exists and was not created by ecoctl" in errors[0]
    with psycopg.connect(**admin, dbname="postgres") as conn:
        assert conn.execute("select 1 from pg_database where datname = 'audit_db'").fetchone() is None
    adopted = run_ecoctl("up", "--adopt", "--json", cwd=root, timeout=600)
    assert adopted.returncode == 0, adopted.stderr[-3000:]
    assert {s["name"]: s["health"] for s in json.loads(adopted.stdout)["services"]}["audit"] == "healthy"
    with psycopg.connect(**admin, dbname="postgres") as conn:
        assert conn.execute("select rolcreaterole from pg_roles where rolname = 'audit_user'").fetchone() == (False,)


def check_go_service(root, ports, env) -> None:
    """A go-gin service added to the running stack: built once by the local runtime as its template
    declares, healthy, checking tokens, scraped by Prometheus, its database its own."""
    import time

    added = run_ecoctl("add-service", "rewards", "--template", "go-gin", "--port", str(ports["rewards"]),
                       "--json", cwd=root, timeout=900)
    assert added.returncode == 0, added.stderr[-3000:]
    assert json.loads(added.stdout)["health"] == "healthy"
    rewards = f"http://127.0.0.1:{ports['rewards']}"
    assert httpx.get(f"{rewards}/healthz").status_code == 200
    assert httpx.get(f"{rewards}/items").status_code == 401
    token = run_ecoctl("token", "rewards", cwd=root).stdout.strip()
    assert httpx.get(f"{rewards}/items", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    portfolio_token = run_ecoctl("token", "portfolio", cwd=root).stdout.strip()
    assert httpx.get(f"{rewards}/items", headers={"Authorization": f"Bearer {portfolio_token}"}).status_code == 401
    env = EnvFile(root / ".env")
    with psycopg.connect(host="127.0.0.1", port=ports["pg"], dbname="rewards_db", user="rewards_user",
                         password=env.get("REWARDS_DB_PASSWORD")) as conn:
        assert conn.execute("select count(*) from items").fetchone() == (0,)  # migrated at start
    with pytest.raises(psycopg.OperationalError):  # another service's role may not connect
        psycopg.connect(host="127.0.0.1", port=ports["pg"], dbname="rewards_db", user="loyalty_user",
                        password=env.get("LOYALTY_DB_PASSWORD"), connect_timeout=5).close()
    if shutil.which("prometheus"):
        deadline = time.monotonic() + 60
        while True:
            targets = httpx.get(f"http://127.0.0.1:{ports['prom']}/api/v1/targets").json()["data"]["activeTargets"]
            health = {t["labels"]["job"]: t["health"] for t in targets}
            if health.get("rewards") == "up":
                break
            assert time.monotonic() < deadline, health
            time.sleep(1)
    again = run_ecoctl("up", "--json", cwd=root, timeout=300)  # built once: nothing to rebuild
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False, again.stdout[-2000:]
