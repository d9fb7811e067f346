"""The pooler and the replica under the docker runtime, against a real engine:
`core.postgres.pooler: pgbouncer` runs the pgbouncer image tests/docker/setup.sh builds (Debian's
pgbouncer, no registry), the portfolio service reaches its database through it (transaction mode),
`status` shows the pools, a rotated password reaches the pooler's userlist (reloaded in its
container) and a thousand clients are served through its published port while PostgreSQL takes a
hundred; `core.postgres.replicas: 1` runs a streaming hot standby container (base backup on first
start, the primary's pg_hba.conf opened to its role by apply): a write is read there within 1 s, a
write there is refused; turned 1 -> 0 -> 1 while the primary recycles its WAL, it is copied again
and serves the rows written meanwhile. The pooler and the replica under swarm too (the replication
password from a Docker secret, through a pgpass file). Authentik is the test double.
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
from tests.helpers import DOCKER_TEST_IMAGES, docker_engine_problem, free_port, use_free_edge_ports
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
        use_free_edge_ports(document)  # local stacks on the other worker have theirs on free ports too

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


def seen(reader: psycopg.Connection, mark: int) -> bool:
    try:
        return reader.execute("select 1 from marks where id = %s", (mark,)).fetchone() is not None
    except psycopg.errors.UndefinedTable:  # the table itself not replayed yet
        return False


def assert_the_replica_streams_and_refuses_writes(workspace: Workspace, inside: str, first: int = 1) -> None:
    """A write on the primary is read on the replica within 1 s, a write through DATABASE_READ_URL
    is refused, `status` shows the lag and `doctor` checks replication."""
    from ecoctl.commands.doctor import doctor
    from ecoctl.commands.stack import status

    inside_env = contract.environment(workspace, "audit", inside)  # swarm: no URL, its password in a file
    assert (inside_env["DATABASE_READ_HOST"], inside_env["DATABASE_READ_PORT"]) == ("postgres-replica", "5432")
    read_url = contract.environment(workspace, "audit", "host")["DATABASE_READ_URL"]
    assert f":{workspace.ecosystem.core.postgres.replica_port}/audit_db" in read_url
    write_url = contract.environment(workspace, "audit", "host")["DATABASE_URL"]
    with psycopg.connect(write_url, autocommit=True, prepare_threshold=None) as writer, \
            psycopg.connect(read_url, autocommit=True) as reader:
        writer.execute("create table if not exists marks (id int primary key)")
        for mark in range(first, first + 3):
            writer.execute("insert into marks values (%s)", (mark,))
            written = time.monotonic()
            while not seen(reader, mark):
                assert time.monotonic() - written < 1.0, f"mark {mark} not on the replica after 1 s"
                time.sleep(0.01)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            reader.execute("insert into marks values (99)")
    rows = {row.name: row for row in status(workspace).components}
    assert "replication streaming, lag " in rows["postgres-replica"].detail, rows["postgres-replica"]
    checks = {check.name: check for check in doctor(workspace)}
    assert checks["replication"].status == "ok", checks["replication"]


def test_the_replica_container_streams_and_refuses_writes(pooled):
    assert_the_replica_streams_and_refuses_writes(Workspace(pooled.root), "compose")


def turn_the_replica_off_and_on(workspace: Workspace, inside: str, **up_options) -> None:
    """replicas: 0 removes the replica (its volume kept) and drops the slot; the primary then
    recycles the WAL the kept data needs; replicas: 1 finds the new slot holds none for it and
    takes a new base backup in the container: the rows written meanwhile are served."""
    from ecoctl.commands.stack import up

    admin = dict(host="127.0.0.1", port=workspace.ecosystem.core.postgres.port, dbname="audit_db", user="postgres",
                 password=workspace.env.get("POSTGRES_PASSWORD"), autocommit=True)
    workspace.ecosystem_file.update(lambda doc: doc["core"]["postgres"].update({"replicas": 0}))
    up(Workspace(workspace.root), health_timeout=300, **up_options)
    with psycopg.connect(**admin) as conn:
        assert conn.execute("select count(*) from pg_replication_slots").fetchone()[0] == 0
        for mark in range(10, 15):
            conn.execute("insert into marks values (%s)", (mark,))
            conn.execute("select pg_switch_wal()")
            conn.execute("checkpoint")
    workspace.ecosystem_file.update(lambda doc: doc["core"]["postgres"].update({"replicas": 1}))
    up(Workspace(workspace.root), health_timeout=300, **up_options)
    read_url = contract.environment(Workspace(workspace.root), "audit", "host")["DATABASE_READ_URL"]
    deadline = time.monotonic() + 30  # swarm reports a task running once its healthcheck passed
    while True:
        try:
            with psycopg.connect(read_url, autocommit=True, connect_timeout=5) as reader:
                assert reader.execute("select count(*) from marks where id between 10 and 14").fetchone()[0] == 5
                break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    assert_the_replica_streams_and_refuses_writes(Workspace(workspace.root), inside, first=20)


def test_the_replica_turned_off_and_on_again_is_copied_again_when_its_wal_is_gone(pooled):
    turn_the_replica_off_and_on(pooled, "compose")


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
        core["postgres"].update({"port": free_port(), "pooler": "pgbouncer", "pooler_port": free_port(),
                                 "replicas": 1, "replica_port": free_port()})
        document["services"]["audit"] = {"port": free_port(), "read_replica": True, "pattern": "external",
                                         "host": "127.0.0.1"}
        core["redis"]["port"] = free_port()
        core["authentik"]["url"] = authentik_on_bridge.base_url
        core["monitoring"]["enabled"] = False
        document["services"]["portfolio"]["port"] = free_port()
        use_free_edge_ports(document)  # local stacks on the other worker have theirs on free ports too

    workspace = Workspace(root)
    workspace.ecosystem_file.update(configure)
    workspace.env.set("AUTHENTIK_TOKEN", authentik_on_bridge.token)
    workspace.env.save()
    try:
        try:
            up(Workspace(root), health_timeout=300, init_swarm=True)
        except Exception:
            import subprocess

            for name in ("postgres-replica", "postgres"):
                service = f"{Workspace(root).ecosystem.name}_{name}"
                logs = subprocess.run(["docker", "service", "logs", "--tail", "30", service], capture_output=True,
                                      text=True)
                print(f"--- {service}\n{logs.stdout}{logs.stderr}")
            raise
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


def test_the_replica_under_swarm_streams_and_refuses_writes(pooled_swarm):
    """The replication password reaches the replica as a Docker secret file, copied by its entrypoint
    into a pgpass file (0600, the postgres user's): never in its environment or its command."""
    import json
    import subprocess

    workspace = Workspace(pooled_swarm.root)
    assert_the_replica_streams_and_refuses_writes(workspace, "swarm")
    password = workspace.env.get("REPLICATION_PASSWORD")
    service = f"{workspace.ecosystem.name}_postgres-replica"
    spec = subprocess.run(["docker", "service", "inspect", service], capture_output=True, text=True, check=True).stdout
    assert password not in spec
    container = json.loads(spec)[0]["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert "PGPASSWORD_FILE=/run/secrets/REPLICATION_PASSWORD" in container["Env"]
    assert not any(entry.startswith("PGPASSWORD=") for entry in container["Env"])
    ids = subprocess.run(["docker", "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert ids, f"no task of {service} runs here"
    inspected = subprocess.run(["docker", "inspect", ids[0]], capture_output=True, text=True, check=True).stdout
    assert password not in inspected
    mode = subprocess.run(["docker", "exec", ids[0], "stat", "-c", "%a %U", "/run/postgresql/ecoctl-replica.pgpass"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert mode == ["600", "postgres"]


def test_the_replica_under_swarm_turned_off_and_on_again_is_copied_again(pooled_swarm):
    turn_the_replica_off_and_on(pooled_swarm, "swarm")
