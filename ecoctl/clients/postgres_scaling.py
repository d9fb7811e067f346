"""PostgreSQL statements of the data layer's scaling: replication slots, the replication role, the
verifiers the pooler's userlist copies, and what `status` and `doctor` read of replication."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg import sql

from ecoctl.clients.postgres import MANAGED, scram_verifier

if TYPE_CHECKING:
    import psycopg


def read_slots(conn: "psycopg.Connection") -> dict[str, bool]:
    """ecoctl's physical replication slots -> whether a standby streams from it now."""
    rows = conn.execute("select slot_name, active from pg_replication_slots "
                        "where slot_type = 'physical' and slot_name like 'ecoctl\\_%'").fetchall()
    return {name: active for name, active in rows}


def read_verifiers(conn: "psycopg.Connection", roles: list[str]) -> dict[str, str]:
    """The stored SCRAM verifiers of ROLES (those that have one; needs a superuser)."""
    rows = conn.execute("select rolname, rolpassword from pg_authid where rolname = any(%s) "
                        "and rolpassword like 'SCRAM-SHA-256$%%'", (roles,)).fetchall()
    return dict(rows)


def set_replication_role(conn: "psycopg.Connection", role: str, password: str) -> None:
    verifier = sql.Literal(scram_verifier(conn, role, password))
    exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
    with conn.transaction():
        conn.execute(sql.SQL(("ALTER" if exists else "CREATE") + " ROLE {} WITH LOGIN REPLICATION PASSWORD {}")
                     .format(sql.Identifier(role), verifier))
        conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(sql.Identifier(role), sql.Literal(MANAGED)))


def create_slot(conn: "psycopg.Connection", slot: str) -> None:
    if conn.execute("select 1 from pg_replication_slots where slot_name = %s", (slot,)).fetchone() is None:
        conn.execute("select pg_create_physical_replication_slot(%s)", (slot,))


def drop_slot(conn: "psycopg.Connection", slot: str, wait: float = 30.0) -> None:
    """SLOT dropped once no standby streams from it: a replica being removed (a swarm service, a
    container) is waited for WAIT seconds."""
    import time

    deadline = time.monotonic() + wait
    while True:
        row = conn.execute("select active from pg_replication_slots where slot_name = %s", (slot,)).fetchone()
        if row is None or not row[0] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if row is None:
        return
    if row[0]:
        from ecoctl.errors import EcoctlError

        raise EcoctlError(f"replication slot {slot} is in use by a replica: stop it (`ecoctl up` removes a "
                          "replica ecosystem.yaml no longer asks for), then apply again")
    conn.execute("select pg_drop_replication_slot(%s)", (slot,))


def replication_allowed(conn: "psycopg.Connection", role: str) -> bool:
    """Whether pg_hba.conf lets ROLE stream from any address (a container network's)."""
    row = conn.execute("""
        select 1 from pg_hba_file_rules where type = 'host' and 'replication' = any(database)
          and (%s = any(user_name) or 'all' = any(user_name)) and address = 'all' and error is null""",
                       (role,)).fetchone()
    return row is not None


def allow_replication(conn: "psycopg.Connection", line: str) -> None:
    """LINE appended to the server's pg_hba.conf (its exact bytes, through a large object), then
    the configuration reloaded. Only for the stack's own server, as its superuser."""
    path = conn.execute("select current_setting('hba_file')").fetchone()[0]
    current = conn.execute("select pg_read_file(%s)", (path,)).fetchone()[0]
    text = current + ("" if current.endswith("\n") else "\n") + line + "  # ecoctl: the read replica\n"
    with conn.transaction():
        oid = conn.execute("select lo_from_bytea(0, convert_to(%s, 'UTF8'))", (text,)).fetchone()[0]
        conn.execute("select lo_export(%s, %s)", (oid, path))
        conn.execute("select lo_unlink(%s)", (oid,))
    conn.execute("select pg_reload_conf()")


@dataclass
class Replication:
    """What the primary says of a standby streaming from SLOT."""

    slot: str
    exists: bool
    active: bool
    state: str | None
    """pg_stat_replication's state (`streaming`) of the standby on the slot; None: none is connected."""
    lag_bytes: int | None
    """WAL the standby has not replayed yet."""
    replay_lag: float | None
    """Seconds behind, as the primary measures it (None when idle or unknown)."""

    @property
    def summary(self) -> str:
        if not self.exists:
            return f"no replication slot {self.slot}: run `ecoctl apply`"
        if self.state is None:
            return f"no replica streams from slot {self.slot}"
        lag = f"{self.replay_lag:.3f}s" if self.replay_lag is not None else "0s"
        return f"{self.state}, lag {lag} ({self.lag_bytes or 0} bytes)"


def replication(conn: "psycopg.Connection", slot: str) -> Replication:
    row = conn.execute("""
        select s.active, r.state,
               pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(r.replay_lsn, s.restart_lsn))::bigint,
               extract(epoch from r.replay_lag)::float8
        from pg_replication_slots s left join pg_stat_replication r on r.pid = s.active_pid
        where s.slot_name = %s""", (slot,)).fetchone()
    if row is None:
        return Replication(slot, False, False, None, None, None)
    return Replication(slot, True, *row)
