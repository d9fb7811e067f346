"""Schema migrations: applied once each, as the owner role, and only once when replicas start together."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import psycopg
import pytest


from portfolio_service.migrations import MigrationError, available, migrate  # noqa: E402
from portfolio_service.testing import create_service_database  # noqa: E402

OWNER = "portfolio_migrations_user"


@pytest.fixture
def database(pg, request):
    """A fresh database owned by its own login role; yields the owner's DSN."""
    password = secrets.token_urlsafe(16)
    name = f"portfolio_mig_{request.node.name[5:40].lower()}"
    create_service_database(pg.conninfo(), name, OWNER, password)
    return pg.conninfo(dbname=name, user=OWNER, password=password)


def recorded(dsn) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def test_migrations_apply_on_an_empty_database_then_apply_nothing(database):
    versions = [m.version for m in available()]
    assert versions and versions == sorted(versions)
    assert migrate(database) == versions
    assert migrate(database) == []
    assert recorded(database) == versions
    with psycopg.connect(database) as conn:
        owners = dict(conn.execute(
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'").fetchall())
    assert owners == {table: OWNER for table in ("portfolios", "transactions", "prices", "schema_migrations")}


def slow_migrations(tmp_path: Path) -> Path:
    (tmp_path / "0001_first.sql").write_text("SELECT pg_sleep(0.5); CREATE TABLE first (id int);")
    (tmp_path / "0002_second.sql").write_text("CREATE TABLE second (id int);")
    return tmp_path


def test_two_concurrent_starts_migrate_once(database, tmp_path):
    directory = slow_migrations(tmp_path)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def start():
        barrier.wait()
        try:
            results.append(migrate(database, directory))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(results) == [[], ["0001", "0002"]]
    assert recorded(database) == ["0001", "0002"]


def test_the_real_migrations_started_twice_at_once_apply_once(database):
    barrier = threading.Barrier(2)
    results = []

    def start():
        barrier.wait()
        results.append(migrate(database))

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [[], [m.version for m in available()]]


def test_a_new_migration_is_applied_and_an_edited_one_is_refused(database, tmp_path):
    directory = slow_migrations(tmp_path)
    (directory / "0001_first.sql").write_text("CREATE TABLE first (id int);")
    (directory / "0002_second.sql").unlink()
    assert migrate(database, directory) == ["0001"]
    (directory / "0002_second.sql").write_text("CREATE TABLE second (id int);")
    assert migrate(database, directory) == ["0002"]
    (directory / "0001_first.sql").write_text("CREATE TABLE first (id bigint);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(database, directory)


def test_a_failing_migration_leaves_nothing_applied(database, tmp_path):
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE ok (id int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE broken (id nosuchtype);")
    with pytest.raises(psycopg.errors.UndefinedObject):
        migrate(database, tmp_path)
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT to_regclass('ok'), to_regclass('schema_migrations')").fetchone() == (None, None)
