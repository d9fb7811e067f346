"""Issue 12, "Objects ecoctl does not own", PostgreSQL: against the real server of the `pg` fixture.

A role or database with a service's name that ecoctl did not create is refused (one line) unless
`--adopt`; adopted or managed, a role ends with exactly ecoctl's attributes and memberships.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from ecoctl.errors import EcoctlError
from ecoctl.workspace import Workspace
from tests.authentik_fixtures import authentik_double, authentik_double_server  # noqa: F401
from tests.helpers import converge_providers, run_ecoctl
from tests.integration.test_add_service import ecosystem  # noqa: F401 (a fixture)
from tests.integration.test_postgres_provider import (  # noqa: F401 (clean is a fixture)
    clean, login, plan, provision, superuser, write_workspace)

SERVICES = {"portfolio": {}, "loyalty": {"port": 8001, "reads": ["portfolio"]}}
CONFLICT = "! conflict role loyalty_user (exists, not created by ecoctl: pass --adopt to take it over)"


def attributes(pg, role: str) -> dict:
    with superuser(pg) as conn:
        row = conn.execute(
            "select rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolinherit, rolcanlogin, "
            "rolconnlimit, case when rolvaliduntil < 'infinity' then rolvaliduntil::text end, shobj_description(oid, 'pg_authid'), "
            "array(select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid "
            "      where m.member = r.oid order by 1) "
            "from pg_authid r where rolname = %s", (role,)).fetchone()
    keys = ("superuser", "createrole", "createdb", "replication", "bypassrls", "inherit", "login",
            "connlimit", "valid_until", "comment", "member_of")
    return dict(zip(keys, row))


EXACTLY_ECOCTLS = {"superuser": False, "createrole": False, "createdb": False, "replication": False,
                   "bypassrls": False, "inherit": True, "login": True, "connlimit": -1, "valid_until": None,
                   "comment": "managed by ecoctl", "member_of": ["portfolio_readonly"]}


def the_issues_role(pg):
    """The role of issue 12, made by hand: CREATEROLE, BYPASSRLS, may run programs on the server, may
    act as portfolio_user."""
    with superuser(pg) as conn:
        conn.execute("CREATE ROLE loyalty_user LOGIN CREATEROLE BYPASSRLS PASSWORD 'hand-made-pw'")
        conn.execute("GRANT pg_execute_server_program TO loyalty_user")
        conn.execute("GRANT portfolio_user TO loyalty_user")


def run_program_as(pg, user: str, password: str) -> None:
    with psycopg.connect(pg.conninfo(dbname="postgres", user=user, password=password), autocommit=True) as conn:
        conn.execute("COPY (select 1) TO PROGRAM 'cat > /dev/null'")


def test_a_hand_made_role_is_refused_without_adopt_and_stripped_with_it(clean, tmp_path):
    pg = clean
    provision(write_workspace(tmp_path, pg, {"portfolio": {}}))
    the_issues_role(pg)
    run_program_as(pg, "loyalty_user", "hand-made-pw")  # what the issue saw: OS commands as the server's user
    write_workspace(tmp_path, pg, SERVICES)
    assert CONFLICT in plan(Workspace(tmp_path))

    refused = run_ecoctl("apply", "--yes", "--only", "postgres", cwd=tmp_path)
    assert refused.returncode == 1, refused.stdout
    assert CONFLICT in refused.stdout
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert "role loyalty_user exists and was not created by ecoctl: run `ecoctl apply --adopt`" in refused.stderr
    with superuser(pg) as conn:  # refused before anything was applied
        assert conn.execute("select 1 from pg_database where datname = 'loyalty_db'").fetchone() is None
    assert attributes(pg, "loyalty_user")["createrole"] and attributes(pg, "loyalty_user")["comment"] is None

    adopted = run_ecoctl("apply", "--yes", "--adopt", "--only", "postgres", cwd=tmp_path)
    assert adopted.returncode == 0, adopted.stderr
    assert ("~ update role loyalty_user (CREATEROLE, BYPASSRLS, member of pg_execute_server_program, "
            "portfolio_user: removed)") in adopted.stdout
    assert attributes(pg, "loyalty_user") == EXACTLY_ECOCTLS
    assert plan(Workspace(tmp_path)) == []
    password = Workspace(tmp_path).env.get("LOYALTY_DB_PASSWORD")
    with pytest.raises(errors.InsufficientPrivilege):
        run_program_as(pg, "loyalty_user", password)
    with login(pg, Workspace(tmp_path), "loyalty", "loyalty_db") as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SET ROLE portfolio_user")


def test_the_providers_refuse_a_hand_made_role_unless_adopt(clean, tmp_path):
    from ecoctl.plan import Options
    from ecoctl.providers.postgres import PostgresProvider

    pg = clean
    provision(write_workspace(tmp_path, pg, {"portfolio": {}}))
    the_issues_role(pg)
    provider = PostgresProvider(write_workspace(tmp_path, pg, SERVICES))
    try:
        with pytest.raises(EcoctlError, match="^PostgreSQL role loyalty_user exists and was not created"):
            converge_providers([provider])
    finally:
        provider.close()
    provider = PostgresProvider(Workspace(tmp_path), Options(adopt=True))
    try:
        converge_providers([provider])
    finally:
        provider.close()
    assert attributes(pg, "loyalty_user") == EXACTLY_ECOCTLS


def test_add_service_refuses_a_hand_made_role_unless_adopt(clean, ecosystem, authentik_double):  # noqa: F811
    pg, root = clean, ecosystem
    assert run_ecoctl("apply", "--yes", cwd=root).returncode == 0
    the_issues_role(pg)
    refused = run_ecoctl("add-service", "loyalty", "--reads", "portfolio", cwd=root)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "role loyalty_user exists and was not created by ecoctl" in refused.stderr
    with superuser(pg) as conn:
        assert conn.execute("select 1 from pg_database where datname = 'loyalty_db'").fetchone() is None
    assert authentik_double.provider("loyalty") is None  # nothing applied, in any system
    adopted = run_ecoctl("add-service", "loyalty", "--reads", "portfolio", "--adopt", "--json", cwd=root)
    assert adopted.returncode == 0, adopted.stderr
    assert attributes(pg, "loyalty_user") == EXACTLY_ECOCTLS
    assert run_ecoctl("plan", "--detailed-exitcode", cwd=root).returncode == 0


def test_drift_on_managed_roles_is_planned_and_removed(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, SERVICES)
    provision(ws)
    with superuser(pg) as conn:
        conn.execute("ALTER ROLE loyalty_user CREATEROLE BYPASSRLS NOINHERIT CONNECTION LIMIT 3 "
                     "VALID UNTIL '2030-01-01 00:00:00+00'")
        conn.execute("GRANT pg_execute_server_program TO loyalty_user")
        conn.execute("GRANT portfolio_user TO loyalty_user")
        conn.execute("GRANT TEMPORARY ON DATABASE postgres TO loyalty_user")
        conn.execute("GRANT CONNECT, TEMPORARY ON DATABASE template1 TO loyalty_user")
        conn.execute("ALTER ROLE portfolio_readonly CREATEDB")
        conn.execute("GRANT pg_read_server_files TO portfolio_readonly")
        conn.execute("CREATE ROLE intruder_x LOGIN")
        conn.execute("GRANT portfolio_readonly TO intruder_x")
    try:
        planned = plan(Workspace(tmp_path))
        assert planned == [
            "~ update role loyalty_user (CREATEROLE, BYPASSRLS, NOINHERIT, CONNECTION LIMIT 3, VALID UNTIL "
            "2030-01-01 00:00:00+00, member of pg_execute_server_program, portfolio_user, TEMPORARY on postgres, "
            "CONNECT TEMPORARY on template1: removed)",
            "~ update role portfolio_readonly (CREATEDB, member of pg_read_server_files: removed)",
            "- delete membership intruder_x in portfolio_readonly (not one of its readers)"]
        provision(Workspace(tmp_path))
        assert plan(Workspace(tmp_path)) == []
        assert attributes(pg, "loyalty_user") == EXACTLY_ECOCTLS
        group = attributes(pg, "portfolio_readonly")
        assert (group["createdb"], group["login"], group["member_of"]) == (False, False, [])
        assert attributes(pg, "intruder_x")["member_of"] == []  # the role itself is not ecoctl's: kept
        with superuser(pg) as conn:  # what PUBLIC may do there is left as it was (doctor reports it)
            granted = set(conn.execute(
                "select d.datname, case when a.grantee = 0 then 'PUBLIC' else a.grantee::regrole::text end, "
                "a.privilege_type from pg_database d, aclexplode(d.datacl) a "
                "where d.datname in ('postgres', 'template1') and a.grantee <> d.datdba").fetchall())
        assert not {row for row in granted if row[1] == "loyalty_user"}
        assert {("postgres", "PUBLIC", "CONNECT"), ("template1", "PUBLIC", "CONNECT")} <= granted
    finally:
        with superuser(pg) as conn:
            conn.execute("DROP ROLE IF EXISTS intruder_x")


def test_a_membership_another_role_granted_is_revoked_too(clean, tmp_path):
    """Since PostgreSQL 16 each grantor's grant is its own row: a plain REVOKE by the superuser would
    leave the one a delegated admin made."""
    pg = clean
    ws = write_workspace(tmp_path, pg, SERVICES)
    provision(ws)
    with superuser(pg) as conn:
        conn.execute("CREATE ROLE delegate_x NOLOGIN")
        conn.execute("GRANT pg_execute_server_program TO delegate_x WITH ADMIN OPTION")
        conn.execute("SET ROLE delegate_x")
        conn.execute("GRANT pg_execute_server_program TO loyalty_user")
        conn.execute("RESET ROLE")
    try:
        assert plan(Workspace(tmp_path)) == [
            "~ update role loyalty_user (member of pg_execute_server_program: removed)"]
        provision(Workspace(tmp_path))
        assert attributes(pg, "loyalty_user")["member_of"] == ["portfolio_readonly"]
        assert plan(Workspace(tmp_path)) == []
    finally:
        with superuser(pg) as conn:
            conn.execute("DROP ROLE IF EXISTS delegate_x")


def test_a_reader_loses_the_admin_option_on_its_read_group(clean, tmp_path):
    pg = clean
    provision(write_workspace(tmp_path, pg, SERVICES))
    with superuser(pg) as conn:
        conn.execute("GRANT portfolio_readonly TO loyalty_user WITH ADMIN OPTION")
    assert plan(Workspace(tmp_path)) == ["~ update role loyalty_user (ADMIN OPTION on portfolio_readonly: removed)"]
    provision(Workspace(tmp_path))
    assert plan(Workspace(tmp_path)) == []
    with superuser(pg) as conn:
        assert conn.execute("select bool_or(admin_option), count(*) from pg_auth_members "
                            "where member = 'loyalty_user'::regrole").fetchone() == (False, 1)


def test_a_hand_made_database_is_a_conflict_until_adopted(clean, tmp_path):
    pg = clean
    with superuser(pg) as conn:
        conn.execute("CREATE DATABASE loyalty_db")
    write_workspace(tmp_path, pg, SERVICES)
    assert ("! conflict database loyalty_db (exists, not created by ecoctl: pass --adopt to take it over)"
            in plan(Workspace(tmp_path)))
    refused = run_ecoctl("apply", "--yes", "--only", "postgres", cwd=tmp_path)
    assert refused.returncode == 1
    assert "PostgreSQL database loyalty_db exists and was not created by ecoctl" in refused.stderr
    with superuser(pg) as conn:
        assert conn.execute("select 1 from pg_roles where rolname = 'portfolio_user'").fetchone() is None
    adopted = run_ecoctl("apply", "--yes", "--adopt", "--only", "postgres", cwd=tmp_path)
    assert adopted.returncode == 0, adopted.stderr
    with superuser(pg) as conn:
        owner, comment = conn.execute("select pg_get_userbyid(datdba), shobj_description(oid, 'pg_database') "
                                      "from pg_database where datname = 'loyalty_db'").fetchone()
    assert (owner, comment) == ("loyalty_user", "managed by ecoctl")
    assert plan(Workspace(tmp_path)) == []


def test_doctor_warns_when_public_may_use_the_admin_databases(clean, tmp_path):
    from ecoctl.commands.doctor import Doctor

    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}})

    def check() -> tuple[str, str, str]:
        doctor = Doctor(ws)
        with superuser(pg) as conn:
            doctor.check_public_access(conn, "postgres", superuser=True)
        [result] = doctor.checks
        return result.status, result.verdict, result.fix

    status, verdict, fix = check()  # a default server: PUBLIC may connect and make TEMP tables
    assert status == "warn" and "postgres: CONNECT, TEMPORARY" in verdict and "template1: CONNECT" in verdict
    assert fix.startswith("as the admin: REVOKE CONNECT, TEMPORARY ON DATABASE postgres, template1 FROM PUBLIC")
    with superuser(pg) as conn:
        conn.execute("REVOKE CONNECT, TEMPORARY ON DATABASE postgres, template1 FROM PUBLIC")
    try:
        assert check()[0] == "ok"
    finally:
        with superuser(pg) as conn:
            conn.execute("GRANT CONNECT, TEMPORARY ON DATABASE postgres TO PUBLIC")
            conn.execute("GRANT CONNECT ON DATABASE template1 TO PUBLIC")


def test_doctor_cli_reports_public_access_to_the_admin_databases(clean, tmp_path):
    import json

    pg = clean
    block = ["    external:", "      host: 127.0.0.1", f"      port: {pg.port}",
             "      admin_user: postgres", "      password_env: ADMIN_PW"]
    write_workspace(tmp_path, pg, {"portfolio": {}}, postgres_block=block, extra_env=f"ADMIN_PW={pg.password}\n")
    report = json.loads(run_ecoctl("doctor", "--json", cwd=tmp_path).stdout)
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["postgres"]["status"] == "ok", checks["postgres"]
    assert checks["postgres-public"]["status"] == "warn"
    assert "REVOKE CONNECT, TEMPORARY ON DATABASE postgres, template1 FROM PUBLIC" in checks["postgres-public"]["fix"]


def test_a_database_left_unmarked_by_a_killed_run_is_marked_by_the_next(clean, tmp_path, monkeypatch):
    """CREATE DATABASE cannot share a transaction with its COMMENT: a run that dies between them
    (here: at the COMMENT) leaves an unmarked database, which the next run marks instead of
    refusing it as someone else's, because the provider's journal named it first."""
    from ecoctl.clients.postgres import Admin
    from ecoctl.providers.postgres_state import CreateJournal

    pg = clean
    ws = write_workspace(tmp_path, pg, {"portfolio": {}})
    provision(ws)
    ws = write_workspace(tmp_path, pg, SERVICES)
    real_mark = Admin._mark_managed

    def die_at_the_database_comment(self, conn, kind, name):
        if kind == "DATABASE" and name == "loyalty_db":
            raise SystemExit("killed between CREATE DATABASE and COMMENT")
        real_mark(self, conn, kind, name)

    monkeypatch.setattr(Admin, "_mark_managed", die_at_the_database_comment)
    with pytest.raises(SystemExit):
        provision(ws)
    monkeypatch.setattr(Admin, "_mark_managed", real_mark)
    with superuser(pg) as conn:
        comment = conn.execute("select shobj_description(oid, 'pg_database') from pg_database "
                               "where datname = 'loyalty_db'").fetchone()
    assert comment == (None,)
    assert CreateJournal(ws.state_dir).names() == {"loyalty_db"}

    planned = plan(Workspace(tmp_path))
    assert any(line.startswith("~ update database loyalty_db (mark managed by ecoctl: a run that created it "
                               "was interrupted") for line in planned), planned
    assert not any(line.startswith("! conflict") for line in planned)
    applied = run_ecoctl("apply", "--yes", "--only", "postgres", cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert plan(Workspace(tmp_path)) == []
    assert CreateJournal(ws.state_dir).names() == set()
