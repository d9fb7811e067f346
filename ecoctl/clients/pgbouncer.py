"""pgbouncer's admin console: its pools (SHOW POOLS), read as the pooler's stats user.

The console speaks only the simple query protocol and knows no transactions, so the session is in
autocommit and the query goes through a client-side cursor.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecoctl.errors import EcoctlError


@dataclass(frozen=True)
class Pool:
    database: str
    user: str
    clients_active: int
    clients_waiting: int
    servers_active: int
    servers_idle: int
    max_wait: float
    """Seconds the oldest waiting client has waited."""


def pools(host: str, port: int, user: str, password: str, timeout: float = 3.0) -> list[Pool]:
    """Every pool but the console's own; EcoctlError (one line) when the pooler does not answer."""
    import psycopg

    try:
        with psycopg.connect(host=host, port=port, dbname="pgbouncer", user=user, password=password,
                             autocommit=True, connect_timeout=max(1, int(timeout))) as conn:
            cursor = psycopg.ClientCursor(conn)
            cursor.execute("SHOW POOLS")
            names = [column.name for column in cursor.description]
            rows = [dict(zip(names, row)) for row in cursor.fetchall()]
    except psycopg.Error as exc:
        raise EcoctlError(f"pgbouncer on {host}:{port} did not answer: {str(exc).strip().splitlines()[-1]}") from None
    return [Pool(row["database"], row["user"], int(row["cl_active"]), int(row["cl_waiting"]),
                 int(row["sv_active"]), int(row["sv_idle"]), int(row["maxwait"]) + int(row.get("maxwait_us", 0)) / 1e6)
            for row in rows if row["database"] != "pgbouncer"]


def summary(found: list[Pool]) -> str:
    """One line for `status`: each pool's clients active/waiting and server connections."""
    if not found:
        return "no pools yet (a pool opens on a database's first client)"
    return "; ".join(f"{pool.database}: clients {pool.clients_active} active/{pool.clients_waiting} waiting, "
                     f"servers {pool.servers_active} active/{pool.servers_idle} idle" for pool in found)
