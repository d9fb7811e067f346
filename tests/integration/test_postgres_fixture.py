import psycopg
import pytest


def test_fixture_serves_password_auth(pg):
    with psycopg.connect(pg.conninfo()) as conn:
        assert conn.execute("select current_user").fetchone()[0] == pg.superuser
        method = conn.execute("select auth_method from pg_hba_file_rules where type = 'host' limit 1"
                              ).fetchone()[0]
        assert method == "scram-sha-256"


def test_fixture_rejects_a_wrong_password(pg):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg.conninfo(password="not-the-password"))
