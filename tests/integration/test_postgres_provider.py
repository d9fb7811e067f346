"""The postgres provider against the real PostgreSQL of the `pg` fixture."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors, sql

from ecoctl.errors import EcoctlError, Unreachable
from ecoctl.plan import Options, make_plan
from tests.helpers import converge_providers, ensure_secrets
from ecoctl.commands.secrets import rotate_password
from ecoctl.commands.services import shared_write_refused
from tests.helpers import free_port
from ecoctl.clients.postgres import MANAGED
from ecoctl.providers.postgres import PostgresProvider
from ecoctl.workspace import Workspace


def superuser(pg, dbname="postgres"):
    return psycopg.connect(pg.conninfo(dbname=dbname), autocommit=True)


def drop_everything_ecoctl_made(pg):
    with superuser(pg) as conn:
        for (name,) in conn.execute("select datname from pg_database "
                                    "where shobj_description(oid, 'pg_database') = %s or datname ~ '_db$' "
                                    "or pg_get_userbyid(datdba) ~ '_user$'", (MANAGED,)).fetchall():
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        for (name,) in conn.execute("select rolname from pg_roles where rolname ~ '_(user|readonly)$' "
                                    "or shobj_description(oid, 'pg_authid') = %s", (MANAGED,)).fetchall():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def clean(pg):
    """Every test starts and ends without the roles/databases another test made (the server is shared)."""
    drop_everything_ecoctl_made(pg)
    yield pg
    drop_everything_ecoctl_made(pg)


def write_workspace(root, pg, services: dict[str, dict], *, authentik_runs=False, postgres_block=None,
                    admin_password=None, extra_env="") -> Workspace:
    lines = ["name: test", "runtime: local", "core:", "  postgres:"]
    lines += postgres_block or [f"    port: {pg.port}"]
    if not authentik_runs:
        lines += ["  authentik:", "    url: http://127.0.0.1:1"]
    lines.append("services:")
    for name, spec in services.items():
        lines.append(f"  {name}:")
        lines.append(f"    port: {spec.get('port', 8000)}")
        if name == "portfolio":
            lines.append("    template: portfolio")
        if spec.get("reads"):
            lines.append(f"    reads: [{', '.join(spec['reads'])}]")
    (root / "ecosystem.yaml").write_text("\n".join(lines) + "\n")
    env = root / ".env"
    existing = env.read_text() if env.exists() else \
        f"POSTGRES_PASSWORD={admin_password or pg.password}\n{extra_env}"
    env.write_text(existing)
    return Workspace(root)


def provision(workspace, **kwargs) -> list[str]:
    provider = PostgresProvider(workspace, Options(drop_data=frozenset(kwargs.get("drop_data", ()))))
    try:
        return [str(change) for change in converge_providers([provider]).changes]
    finally:
        provider.close()


def plan(workspace, **kwargs) -> list[str]:
    ensure_secrets(workspace)
    provider = PostgresProvider(workspace, Options(drop_data=frozenset(kwargs.get("drop_data", ()))))
    try:
        result = make_plan([provider])
        assert not result.pending, result.pending
        return [str(change) for change in result.changes]
    finally:
        provider.close()


def login(pg, workspace, service, dbname):
    from ecoctl.names import env_prefix, role_name

    password = Workspace(workspace.root).env.get(f"{env_prefix(service)}_DB_PASSWORD")
    return psycopg.connect(pg.conninfo(dbname=dbname, user=role_name(service), password=password),
                           autocommit=True)


def test_each_service_gets_an_isolated_database_and_a_working_password(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}, "loyalty": {"port": 8001}})
    changes = provision(ws)
    assert "+ create database loyalty_db (owner loyalty_user)" in changes
    assert "+ create role portfolio_user (password from .env PORTFOLIO_DB_PASSWORD)" in changes
    assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600
    with login(pg, ws, "loyalty", "loyalty_db") as conn:
        conn.execute("create table points (id serial primary key, amount int)")
        conn.execute("insert into points (amount) values (5)")
        assert conn.execute("select current_user").fetchone()[0] == "loyalty_user"
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        login(pg, ws, "loyalty", "portfolio_db")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg.conninfo(dbname="loyalty_db", user="loyalty_user", password="wrong-password"))
    with superuser(pg) as conn:
        conn.execute("create role stranger login password 'x-stranger'")
        try:
            with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
                psycopg.connect(pg.conninfo(dbname="loyalty_db", user="stranger", password="x-stranger"))
        finally:
            conn.execute("drop role stranger")
    assert plan(ws) == []


def test_passwords_reach_the_server_as_scram_verifiers_only(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}})
    provision(ws)
    password = Workspace(tmp_path).env.get("PORTFOLIO_DB_PASSWORD")
    with superuser(pg) as conn:
        stored = conn.execute("select rolpassword from pg_authid where rolname = 'portfolio_user'").fetchone()[0]
    assert stored.startswith("SCRAM-SHA-256$") and password not in stored


def test_hyphenated_service_names(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}, "loyalty-points": {"port": 8001}})
    changes = provision(ws)
    assert "+ create database loyalty_points_db (owner loyalty_points_user)" in changes
    assert Workspace(tmp_path).env.get("LOYALTY_POINTS_DB_PASSWORD")
    with login(pg, ws, "loyalty-points", "loyalty_points_db") as conn:
        assert conn.execute("select current_database()").fetchone()[0] == "loyalty_points_db"


def test_shared_read_covers_tables_created_later_and_nothing_else(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}, "loyalty": {"port": 8001, "reads": ["portfolio"]}})
    changes = provision(ws)
    assert "+ create role portfolio_readonly (read-only access to portfolio_db)" in changes
    assert "+ create membership loyalty_user in portfolio_readonly (read-only access to portfolio_db)" in changes
    with login(pg, ws, "portfolio", "portfolio_db") as owner:  # migrations run as the owner, after the grant
        owner.execute("create table holdings (id serial primary key, symbol text)")
        owner.execute("insert into holdings (symbol) values ('ACME')")
        owner.execute("create schema reports")
        owner.execute("create table reports.daily (day date)")
    with login(pg, ws, "loyalty", "portfolio_db") as reader:
        assert reader.execute("select symbol from holdings").fetchall() == [("ACME",)]
        assert reader.execute("select count(*) from reports.daily").fetchone() == (0,)
        assert reader.execute("select last_value from holdings_id_seq").fetchone() == (1,)
        for statement in ("insert into holdings (symbol) values ('X')", "update holdings set symbol = 'Y'",
                          "delete from holdings", "create table public.mine (x int)",
                          "create schema mine", "create temp table scratch (x int)",
                          "select nextval('holdings_id_seq')"):
            with pytest.raises(errors.InsufficientPrivilege):
                reader.execute(statement)
    assert plan(ws) == []  # new tables are not drift


def test_existing_tables_are_readable_when_reads_is_added(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}, "loyalty": {"port": 8001}})
    provision(ws)
    with login(pg, ws, "portfolio", "portfolio_db") as owner:
        owner.execute("create table old_table (x int)")
    ws = write_workspace(tmp_path, pg, {"portfolio": {}, "loyalty": {"port": 8001, "reads": ["portfolio"]}})
    provision(ws)
    with login(pg, ws, "loyalty", "portfolio_db") as reader:
        assert reader.execute("select count(*) from old_table").fetchone() == (0,)


def test_removing_reads_revokes_access(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}, "loyalty": {"port": 8001, "reads": ["portfolio"]}})
    provision(ws)
    ws = write_workspace(tmp_path, pg, {"portfolio": {}, "loyalty": {"port": 8001}})
    assert plan(ws) == [
        "- delete membership loyalty_user in portfolio_readonly (no longer in its service's reads)",
        "- delete role portfolio_readonly (no service reads its database)",
    ]
    provision(ws)
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        login(pg, ws, "loyalty", "portfolio_db")
    assert plan(ws) == []


def test_second_apply_changes_nothing(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}, "a-one": {"port": 8001, "reads": ["portfolio"]},
                                        "b-two": {"port": 8002, "reads": ["portfolio", "a-one"]}},
                         authentik_runs=True)
    assert len(provision(ws)) == 13
    assert provision(Workspace(tmp_path)) == []
    with superuser(pg) as conn:
        assert conn.execute("select pg_get_userbyid(datdba) from pg_database where datname = 'authentik'"
                            ).fetchone() == ("authentik_user",)
    assert Workspace(tmp_path).env.get("AUTHENTIK_DB_PASSWORD")


def test_reading_is_a_fixed_number_of_queries(clean, tmp_path):
    pg = clean

    def count_queries(services):
        ws = write_workspace(tmp_path, pg, services)
        provision(ws)
        provider = PostgresProvider(ws)
        conn = provider.admin.conn
        traced = []
        original = conn.execute
        conn.execute = lambda query, *args, **kwargs: traced.append(query) or original(query, *args, **kwargs)
        try:
            assert provider.plan() == []
        finally:
            provider.close()
        return len(traced)

    few = count_queries({"portfolio": {}, "s1": {"port": 8001}})
    many = count_queries({"portfolio": {}, **{f"s{i}": {"port": 8000 + i, "reads": ["portfolio"]}
                                              for i in range(1, 7)}})
    assert few == many <= 5  # roles, databases, memberships, privileges, role settings


def test_a_role_dropped_by_hand_is_recreated_with_the_env_password(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}, "loyalty": {"port": 8001, "reads": ["portfolio"]}})
    provision(ws)
    with superuser(pg, "loyalty_db") as conn:
        conn.execute("REASSIGN OWNED BY loyalty_user TO postgres")
        conn.execute("DROP OWNED BY loyalty_user")
        conn.execute("DROP ROLE loyalty_user")
    changes = plan(Workspace(tmp_path))
    assert "+ create role loyalty_user (password from .env LOYALTY_DB_PASSWORD)" in changes
    assert any(change.startswith("~ update database loyalty_db (owner is postgres") for change in changes)
    assert "+ create membership loyalty_user in portfolio_readonly (read-only access to portfolio_db)" in changes
    provision(Workspace(tmp_path))
    with login(pg, ws, "loyalty", "loyalty_db") as conn:
        conn.execute("create table t (x int)")
    with login(pg, ws, "loyalty", "portfolio_db"):
        pass
    assert plan(Workspace(tmp_path)) == []


def test_a_password_changed_by_hand_is_drift(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}})
    provision(ws)
    with superuser(pg) as conn:
        conn.execute("ALTER ROLE portfolio_user PASSWORD 'changed-by-hand'")
    assert plan(Workspace(tmp_path)) == [
        "~ update role portfolio_user (password differs from .env PORTFOLIO_DB_PASSWORD)"]
    provision(Workspace(tmp_path))
    login(pg, ws, "portfolio", "portfolio_db").close()


def test_a_password_missing_from_env_is_generated_and_set(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}})
    provision(ws)
    env = Workspace(tmp_path).env
    old = env.get("PORTFOLIO_DB_PASSWORD")
    env.remove("PORTFOLIO_DB_PASSWORD")
    env.save()
    assert plan(Workspace(tmp_path)) == [
        "~ update role portfolio_user (password differs from .env PORTFOLIO_DB_PASSWORD)"]  # generated before planning
    provision(Workspace(tmp_path))
    assert Workspace(tmp_path).env.get("PORTFOLIO_DB_PASSWORD") not in (None, old)
    login(pg, ws, "portfolio", "portfolio_db").close()


def test_database_drift_is_repaired(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}})
    provision(ws)
    with superuser(pg) as conn:
        conn.execute("GRANT CONNECT ON DATABASE portfolio_db TO PUBLIC")
    assert plan(Workspace(tmp_path)) == ["~ update database portfolio_db (PUBLIC may connect)"]
    provision(Workspace(tmp_path))
    assert plan(Workspace(tmp_path)) == []


def test_roles_not_made_by_ecoctl_are_left_alone(clean, tmp_path):
    pg = clean
    with superuser(pg) as conn:
        conn.execute("CREATE ROLE someone_user LOGIN")
    ws = write_workspace(tmp_path, pg, {"portfolio": {}})
    provision(ws)
    assert plan(Workspace(tmp_path)) == []
    with superuser(pg) as conn:
        assert conn.execute("select 1 from pg_roles where rolname = 'someone_user'").fetchone()


def test_remove_service_keeps_its_database_unless_drop_data(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}, "loyalty": {"port": 8001, "reads": ["portfolio"]}})
    provision(ws)
    with login(pg, ws, "loyalty", "loyalty_db") as conn:
        conn.execute("create table points (amount int)")
        conn.execute("insert into points values (42)")
    ws = write_workspace(tmp_path, pg, {"portfolio": {}})
    assert plan(ws) == [
        "- delete role portfolio_readonly (no service reads its database)",
        "- delete role loyalty_user (service removed; its grants are revoked; "
        "database loyalty_db kept (pass --drop-data to delete it))",
    ]
    provision(ws)
    with superuser(pg, "loyalty_db") as conn:
        assert conn.execute("select amount from points").fetchall() == [(42,)]
        assert conn.execute("select 1 from pg_roles where rolname like 'loyalty%'").fetchone() is None
    assert plan(Workspace(tmp_path)) == []
    assert plan(Workspace(tmp_path), drop_data={"loyalty"}) == [
        "- delete database loyalty_db (--drop-data: all its data is deleted)"]
    provision(Workspace(tmp_path), drop_data={"loyalty"})
    with superuser(pg) as conn:
        assert conn.execute("select 1 from pg_database where datname = 'loyalty_db'").fetchone() is None


def test_remove_service_with_drop_data_at_once(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}, "loyalty-points": {"port": 8001}})
    provision(ws)
    with login(pg, ws, "loyalty-points", "loyalty_points_db"):  # an open session does not block the drop
        ws = write_workspace(tmp_path, pg, {"portfolio": {}})
        assert provision(ws, drop_data={"loyalty-points"}) == [
            "- delete database loyalty_points_db (--drop-data: all its data is deleted)",
            "- delete role loyalty_points_user (service removed; its grants are revoked)",
        ]
    with superuser(pg) as conn:
        assert conn.execute("select 1 from pg_database where datname = 'loyalty_points_db'").fetchone() is None
    assert plan(Workspace(tmp_path)) == []


def test_rotate_password(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}})
    provision(ws)
    old = Workspace(tmp_path).env.get("PORTFOLIO_DB_PASSWORD")
    rotate_password(Workspace(tmp_path), "portfolio")
    new = Workspace(tmp_path).env.get("PORTFOLIO_DB_PASSWORD")
    assert new != old
    login(pg, ws, "portfolio", "portfolio_db").close()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg.conninfo(dbname="portfolio_db", user="portfolio_user", password=old))
    assert plan(Workspace(tmp_path)) == []


def test_rotate_password_failing_to_save_env_keeps_the_old_password_working(clean, tmp_path, monkeypatch):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}})
    provision(ws)
    ws = Workspace(tmp_path)
    old = ws.env.get("PORTFOLIO_DB_PASSWORD")

    def disk_full():
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ws.env, "save", disk_full)
    with pytest.raises(OSError):
        rotate_password(ws, "portfolio")
    assert Workspace(tmp_path).env.get("PORTFOLIO_DB_PASSWORD") == old
    login(pg, ws, "portfolio", "portfolio_db").close()


def test_rotate_password_of_a_missing_role_changes_nothing(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}})
    before = (tmp_path / ".env").read_text()
    with pytest.raises(EcoctlError, match="run `ecoctl apply`"):
        rotate_password(ws, "portfolio")
    with pytest.raises(EcoctlError, match="no service 'nope'"):
        rotate_password(ws, "nope")
    assert (tmp_path / ".env").read_text() == before


def test_unreachable_server_is_pending_with_host_and_port(clean, tmp_path):
    pg = clean
    port = free_port()
    ws = write_workspace(tmp_path, pg, {"portfolio": {}}, postgres_block=[f"    port: {port}"])
    result = make_plan([PostgresProvider(ws)])
    assert result.changes == []
    assert f"127.0.0.1:{port} does not answer" in result.pending["postgres"]
    with pytest.raises(Unreachable):
        PostgresProvider(ws).read()


def test_wrong_admin_password_is_one_line_without_secrets(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}}, admin_password="not-the-admin-password")
    with pytest.raises(EcoctlError) as failure:
        PostgresProvider(ws).read()
    message = str(failure.value)
    assert f"127.0.0.1:{pg.port}" in message and "POSTGRES_PASSWORD" in message
    assert "not-the-admin-password" not in message and "\n" not in message
    assert not isinstance(failure.value, Unreachable)


def test_admin_without_createrole_is_told_what_to_do(clean, tmp_path):
    pg = clean
    with superuser(pg) as conn:
        conn.execute("CREATE ROLE weak_admin_user LOGIN CREATEDB PASSWORD 'weak-admin-pw'")
    block = ["    external:", "      host: 127.0.0.1", f"      port: {pg.port}",
             "      admin_user: weak_admin_user", "      password_env: WEAK_PASSWORD", "      sslmode: disable"]
    write_workspace(tmp_path, pg, {"portfolio": {}}, postgres_block=block,
                    extra_env="WEAK_PASSWORD=weak-admin-pw\n")
    with pytest.raises(EcoctlError, match=f"'weak_admin_user' at 127.0.0.1:{pg.port} lacks CREATEROLE"):
        PostgresProvider(Workspace(tmp_path)).read()


def test_a_createrole_createdb_admin_that_is_not_superuser_can_provision(clean, tmp_path):
    pg = clean
    with superuser(pg) as conn:
        conn.execute("CREATE ROLE ops_admin_user LOGIN CREATEROLE CREATEDB PASSWORD 'ops-admin-pw'")
    block = ["    external:", "      host: 127.0.0.1", f"      port: {pg.port}",
             "      admin_user: ops_admin_user", "      password_env: OPS_PASSWORD"]
    ws = write_workspace(tmp_path, pg, {"portfolio": {}, "loyalty": {"port": 8001, "reads": ["portfolio"]}},
                         postgres_block=block, extra_env="OPS_PASSWORD=ops-admin-pw\n")
    provision(ws)
    assert plan(Workspace(tmp_path)) == []
    with login(pg, ws, "portfolio", "portfolio_db") as owner:
        owner.execute("create table holdings (symbol text)")
    with login(pg, ws, "loyalty", "portfolio_db") as reader:
        assert reader.execute("select count(*) from holdings").fetchone() == (0,)
    ws = write_workspace(tmp_path, pg, {"portfolio": {}}, postgres_block=block)
    provision(ws, drop_data={"loyalty"})
    assert plan(Workspace(tmp_path)) == []


def test_rotating_authentik_password_only_when_authentik_runs_here(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}})
    with pytest.raises(EcoctlError, match="Authentik is external here"):
        rotate_password(ws, "authentik")
    ws = write_workspace(tmp_path, pg, {"portfolio": {}}, authentik_runs=True)
    provision(ws)
    old = Workspace(tmp_path).env.get("AUTHENTIK_DB_PASSWORD")
    rotate_password(Workspace(tmp_path), "authentik")
    new = Workspace(tmp_path).env.get("AUTHENTIK_DB_PASSWORD")
    assert new != old
    psycopg.connect(pg.conninfo(dbname="authentik", user="authentik_user", password=new)).close()


def test_shared_write_is_refused_with_the_seed_rule():
    message = str(shared_write_refused("loyalty", "portfolio"))
    assert "cross-service writes go through portfolio's API" in message
    assert "reads: [portfolio]" in message


def test_a_service_added_back_gets_its_kept_data_back(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}, "loyalty": {"port": 8001}})
    provision(ws)
    with login(pg, ws, "loyalty", "loyalty_db") as conn:
        conn.execute("create table points (id serial primary key, amount int)")
        conn.execute("create view big_points as select * from points where amount > 10")
        conn.execute("insert into points (amount) values (42)")
    provision(write_workspace(tmp_path, pg, {"portfolio": {}}))
    ws = write_workspace(tmp_path, pg, {"portfolio": {}, "loyalty": {"port": 8001}})
    assert "~ update database loyalty_db (owner is postgres, not loyalty_user; " \
           "schema public not owned by loyalty_user)" in plan(ws)
    provision(ws)
    with login(pg, ws, "loyalty", "loyalty_db") as conn:
        conn.execute("insert into points (amount) values (43)")
        assert conn.execute("select amount from big_points order by id").fetchall() == [(42,), (43,)]
        conn.execute("drop view big_points")
    assert plan(Workspace(tmp_path)) == []
