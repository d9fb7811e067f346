"""PostgreSQL going away mid-plan (issue 12): one line naming the server, never "unexpected AdminShutdown"."""

import psycopg
import pytest

from ecoctl.clients.postgres import Admin, check_admin, connect
from ecoctl.errors import Unreachable
from ecoctl.workspace import PostgresEndpoint


@pytest.fixture
def endpoint(pg):
    return PostgresEndpoint("127.0.0.1", pg.port, pg.superuser, pg.password)


def terminate(pg, conn) -> None:
    with psycopg.connect(pg.conninfo(), autocommit=True) as admin:
        admin.execute("select pg_terminate_backend(%s)", (conn.info.backend_pid,))


def test_gone_between_connecting_and_checking_the_admin(pg, endpoint):
    conn = connect(endpoint)
    terminate(pg, conn)
    with pytest.raises(Unreachable) as raised:
        check_admin(conn, endpoint)
    assert f"PostgreSQL at 127.0.0.1:{pg.port} went away" in str(raised.value)
    conn.close()


@pytest.mark.parametrize("step", ["read_state", "role_exists"])
def test_gone_while_reading(pg, endpoint, step):
    admin = Admin.connect(endpoint)
    terminate(pg, admin.conn)
    with pytest.raises(Unreachable) as raised:
        admin.read_state() if step == "read_state" else admin.role_exists("portfolio_user")
    assert f"127.0.0.1:{pg.port}" in str(raised.value) and "\n" not in str(raised.value)
    admin.close()
