"""The pooler and the replica under the docker runtime, against a real engine:
`core.postgres.pooler: pgbouncer` runs the pgbouncer image tests/docker/setup.sh builds (Debian's
pgbouncer, no registry), the portfolio service reaches its database through it (transaction mode),
`status` shows the pools, a rotated password reaches the pooler's userlist (reloaded in its
container) and a thousand clients are served through its published port while PostgreSQL takes a
hundred; `core.postgres.replicas: 1` runs a streaming hot standby container (base backup on first
start, the primary's pg_hba.conf opened to its role by apply): a write is read there within 1 s, a
write there is refused. The pooler under swarm too. Authentik is the test double.
"""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx
import psycopg
import pytest

from ecoctl import contract
from ecoctl.workspace import Workspace
from tests.authentik_fixtures import authentik_on_bridge  # noqa: F401 (a fixture)
from tests.helpers import DOCKER_TEST_IMAGES, docker_engine_problem, free_port
from tests.integration.test_pooler_replica import CLIENTS, hold_connections, raise_open_files

ENGINE_PROBLEM = docker_engine_problem()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(ENGINE_PROBLEM is not None, reason=ENGINE_PROBLEM or "")]


@pytest.fixture(scope="module")
def pooled(tmp_path_factory, authentik_on_bridge):
    from ecoctl.commands.init import init_ecosystem
    from ecoctl.commands.stack import down, up

    root = tmp_path_factory.mktemp("pooler-docker") / "eco"
    init_ecosystem(root, runtime="docker", without=("web",))

    def configure(document):
        document["name"] = f"pb{secrets.token_hex(3)}"
        document["images"] = dict(DOCKER_TEST_IMAGES)
        core = document["core"]
        core["postgres"].update({"port": free_port(), "pooler": "pgbouncer", "pooler_port": free_port(),
                                 "max_client_conn": CLIENTS + 100, "replicas": 1, "replica_port": free_port()})
        document["services"]["audit"] = {"port": free_port(), "read_replica": True, "pattern": "external",
                                         "host": "127.0.0.1"}
        core["redis"]["port"] = free_port()
        core["authentik"]["url"] = authentik_on_bridge.base_url
        core["monitoring"]["enabled"] = False
        document["services"]["portfolio"]["port"] = free_port()

    workspace = Workspace(root)
    workspace.ecosystem_file.update(configure)  # compose.yaml, from init, gets the pooler from apply
    workspace.env.set("AUTHENTIK_TOKEN", authentik_on_bridge.token)
    workspace.env.save()
    try:
        try:
            up(Workspace(root), health_timeout=300)
        except Exception:
            import subprocess

            for name in ("postgres-replica", "pgbouncer", "postgres"):
                container = f"{Workspace(root).ecosystem.name}-{name}"
                logs = subprocess.run(["docker", "logs", "--tail", "30", container], capture_output=True, text=True)
                print(f"--- {container}\n{logs.stdout}{logs.stderr}")
            raise
        yield Workspace(root)
    finally:
        down(Workspace(root), remove_volumes=True)


def test_the_portfolio_service_answers_through_the_pooler(pooled):
    from ecoctl.commands.stack import status

    env = contract.environment(pooled, "portfolio", "compose")
    assert (env["DATABASE_HOST"], env["DATABASE_PORT"]) == ("pgbouncer", "6432")
    url = f"http://127.0.0.1:{pooled.ecosystem.services['portfolio'].port}"
    for _ in range(8):  # past psycopg's prepare threshold
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    rows = {row.name: row for row in status(pooled).components}
    assert (rows["pgbouncer"].state, rows["pgbouncer"].health) == ("running", "healthy")
    assert "portfolio_db: clients" in rows["pgbouncer"].detail


def test_a_rotated_password_reaches_the_pooler_in_its_container(pooled):
    from ecoctl.commands.secrets import rotate

    rotate(Workspace(pooled.root), "portfolio")
    workspace = Workspace(pooled.root)
    conninfo = contract.environment(workspace, "portfolio", "host")["DATABASE_URL"]
    with psycopg.connect(conninfo, prepare_threshold=None, connect_timeout=10) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "portfolio_user"
    url = f"http://127.0.0.1:{workspace.ecosystem.services['portfolio'].port}"
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200


def test_the_replica_container_streams_and_refuses_writes(pooled):
    from ecoctl.commands.doctor import doctor
    from ecoctl.commands.stack import status

    workspace = Workspace(pooled.root)
    assert contract.environment(workspace, "audit", "compose")["DATABASE_READ_URL"].endswith(
        "@postgres-replica:5432/audit_db")
    read_url = contract.environment(workspace, "audit", "host")["DATABASE_READ_URL"]
    assert f":{workspace.ecosystem.core.postgres.replica_port}/audit_db" in read_url
    write_url = contract.environment(workspace, "audit", "host")["DATABASE_URL"]
    with psycopg.connect(write_url, autocommit=True, prepare_threshold=None) as writer, \
            psycopg.connect(read_url, autocommit=True) as reader:
        writer.execute("create table if not exists marks (id int primary key)")
        for mark in range(1, 4):
            writer.execute("insert into marks values (%s)", (mark,))
            written = time.monotonic()
            while reader.execute("select 1 from marks where id = %s", (mark,)).fetchone() is None:
                assert time.monotonic() - written < 1.0, f"mark {mark} not on the replica after 1 s"
                time.sleep(0.01)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            reader.execute("insert into marks values (99)")
    rows = {row.name: row for row in status(workspace).components}
    assert "replication streaming, lag " in rows["postgres-replica"].detail
    checks = {check.name: check for check in doctor(workspace)}
    assert checks["replication"].status == "ok", checks["replication"]


def test_a_thousand_clients_through_the_published_pooler(pooled):
    raise_open_files(4 * CLIENTS)
    conninfo = contract.environment(Workspace(pooled.root), "portfolio", "host")["DATABASE_URL"]
    served, errors = asyncio.run(hold_connections(conninfo, CLIENTS, 0.5))
    assert (served, errors) == (CLIENTS, [])


@pytest.fixture(scope="module")
def pooled_swarm(tmp_path_factory, authentik_on_bridge):
    """The same under the swarm runtime, on a single-node swarm ecoctl makes (and leaves again)
    when the engine is in none."""
    from ecoctl.commands.init import init_ecosystem
    from ecoctl.commands.stack import down, up

    root = tmp_path_factory.mktemp("pooler-swarm") / "swarmeco"  # its own Authentik prefix (one double serves both)
    init_ecosystem(root, runtime="swarm", without=("web",))

    def configure(document):
        document["name"] = f"ps{secrets.token_hex(3)}"
        document["images"] = dict(DOCKER_TEST_IMAGES)
        core = document["core"]
        core["postgres"].update({"port": free_port(), "pooler": "pgbouncer", "pooler_port": free_port()})
        core["redis"]["port"] = free_port()
        core["authentik"]["url"] = authentik_on_bridge.base_url
        core["monitoring"]["enabled"] = False
        document["services"]["portfolio"]["port"] = free_port()

    workspace = Workspace(root)
    workspace.ecosystem_file.update(configure)
    workspace.env.set("AUTHENTIK_TOKEN", authentik_on_bridge.token)
    workspace.env.save()
    try:
        up(Workspace(root), health_timeout=300, init_swarm=True)
        yield Workspace(root)
    finally:
        down(Workspace(root), remove_volumes=True)


def test_the_pooler_under_swarm_serves_and_reloads_a_rotated_password(pooled_swarm):
    from ecoctl.commands.secrets import rotate
    from ecoctl.commands.stack import status

    url = f"http://127.0.0.1:{pooled_swarm.ecosystem.services['portfolio'].port}"
    for _ in range(8):
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    rows = {row.name: row for row in status(pooled_swarm).components}
    assert rows["pgbouncer"].state == "running" and "portfolio_db: clients" in rows["pgbouncer"].detail
    rotation = rotate(Workspace(pooled_swarm.root), "portfolio")
    assert rotation.health == {"portfolio": "healthy"}
    conninfo = contract.environment(Workspace(pooled_swarm.root), "portfolio", "host")["DATABASE_URL"]
    with psycopg.connect(conninfo, prepare_threshold=None, connect_timeout=10) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "portfolio_user"
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
