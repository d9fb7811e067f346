"""Issue 27, item 15: role drift that `plan` did not see, against the real server of the `pg` fixture.

A member of a service's login role (other than the admin) may `SET ROLE` to it and read its data;
a setting on the role (`ALTER ROLE ... SET search_path`) changes what the service sees when it
connects. ecoctl grants neither: both are drift that `plan` shows and `apply` takes back.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from ecoctl.workspace import Workspace
from tests.helpers import run_ecoctl
from tests.integration.test_postgres_provider import (  # noqa: F401 (clean is a fixture)
    clean, login, plan, provision, superuser, write_workspace)

SERVICES = {"portfolio": {}, "loyalty": {"port": 8001, "reads": ["portfolio"]}}


@pytest.fixture
def spy(clean):
    with superuser(clean) as conn:
        conn.execute("DROP ROLE IF EXISTS spy")
        conn.execute("CREATE ROLE spy LOGIN PASSWORD 'spy-password'")
    yield "spy"
    with superuser(clean) as conn:
        conn.execute("DROP OWNED BY spy")
        conn.execute("DROP ROLE spy")


def spy_reads_loyalty(pg) -> list:
    with psycopg.connect(pg.conninfo(dbname="loyalty_db", user="spy", password="spy-password"),
                         autocommit=True) as conn:
        conn.execute("SET ROLE loyalty_user")
        return conn.execute("select amount from points").fetchall()


def test_a_member_of_a_service_role_is_drift_and_apply_takes_it_back(clean, spy, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, SERVICES)
    provision(ws)
    with login(pg, ws, "loyalty", "loyalty_db") as conn:
        conn.execute("create table points (amount int)")
        conn.execute("insert into points values (42)")
    with superuser(pg) as conn:
        conn.execute("GRANT loyalty_user TO spy")
    assert spy_reads_loyalty(pg) == [(42,)]  # what the issue saw: spy connects (inherited) and reads

    planned = run_ecoctl("plan", "--detailed-exitcode", "--only", "postgres", cwd=tmp_path)
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert "- delete membership spy in loyalty_user (may act as loyalty_user: not granted by ecoctl)" \
        in planned.stdout

    applied = run_ecoctl("apply", "--yes", "--only", "postgres", cwd=tmp_path)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        spy_reads_loyalty(pg)
    with superuser(pg) as conn:  # the role itself is not ecoctl's: it stays, and may log in elsewhere
        conn.execute("GRANT CONNECT ON DATABASE loyalty_db TO spy")
    try:
        with pytest.raises(errors.InsufficientPrivilege):
            spy_reads_loyalty(pg)
    finally:
        with superuser(pg) as conn:
            conn.execute("REVOKE CONNECT ON DATABASE loyalty_db FROM spy")
    assert plan(Workspace(tmp_path)) == []


def test_the_admin_stays_a_member_of_the_roles_it_created(clean, tmp_path):
    """A non-superuser admin is made a member of each role it assigns as an owner (PostgreSQL 16):
    that membership is ecoctl's own, never drift."""
    pg = clean
    provision(write_workspace(tmp_path, pg, SERVICES))
    with superuser(pg) as conn:
        conn.execute("GRANT loyalty_user TO postgres")
    assert plan(Workspace(tmp_path)) == []


def test_a_setting_on_a_service_role_is_drift_and_apply_resets_it(clean, tmp_path):
    pg = clean
    ws = write_workspace(tmp_path, pg, SERVICES)
    provision(ws)
    with superuser(pg) as conn:
        conn.execute("ALTER ROLE loyalty_user SET search_path = evil")
        conn.execute("ALTER ROLE loyalty_user IN DATABASE loyalty_db SET statement_timeout = '1ms'")
        conn.execute("ALTER ROLE portfolio_readonly SET work_mem = '64kB'")
    with login(pg, ws, "loyalty", "loyalty_db") as conn:  # what the issue saw: the service sees evil
        assert conn.execute("show search_path").fetchone() == ("evil",)

    planned = run_ecoctl("plan", "--detailed-exitcode", "--only", "postgres", cwd=tmp_path)
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert ("~ update role loyalty_user (setting search_path=evil, setting statement_timeout=1ms in "
            "loyalty_db: removed)") in planned.stdout
    assert "~ update role portfolio_readonly (setting work_mem=64kB: removed)" in planned.stdout
    assert run_ecoctl("plan", "--only", "postgres", cwd=tmp_path).returncode == 0  # plain plan: it answered

    applied = run_ecoctl("apply", "--yes", "--only", "postgres", cwd=tmp_path)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    with superuser(pg) as conn:
        assert conn.execute("select count(*) from pg_db_role_setting s join pg_roles r on r.oid = s.setrole "
                            "where r.rolname in ('loyalty_user', 'portfolio_readonly')").fetchone() == (0,)
    with login(pg, ws, "loyalty", "loyalty_db") as conn:
        assert conn.execute("show search_path").fetchone() == ('"$user", public',)
    assert run_ecoctl("plan", "--detailed-exitcode", "--only", "postgres", cwd=tmp_path).returncode == 0


def test_a_setting_on_someone_elses_role_is_left_alone(clean, spy, tmp_path):
    pg = clean
    provision(write_workspace(tmp_path, pg, SERVICES))
    with superuser(pg) as conn:
        conn.execute("ALTER ROLE spy SET search_path = evil")
    assert plan(Workspace(tmp_path)) == []
