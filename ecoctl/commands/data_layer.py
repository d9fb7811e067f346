"""What `status` and `doctor` say of the data layer's scaling components: the pooler's pools and the
replica's replication, read from the host (127.0.0.1 and the published ports, as in every runtime).

Components are found by what the catalog says they report (`Component.report`), never by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecoctl import components, scaling
from ecoctl.errors import EcoctlError
from ecoctl.runtimes.base import Check, ComponentStatus

if TYPE_CHECKING:
    from ecoctl.workspace import Workspace

LAG_WARN_SECONDS = 10.0


def pools_line(workspace: "Workspace", component) -> str:
    from ecoctl.clients import pgbouncer

    found = pgbouncer.pools("127.0.0.1", component.ports[0].host(workspace.ecosystem), scaling.POOLER_STATS_USER,
                            workspace.env.get(scaling.POOLER_STATS_PASSWORD) or "")
    return pgbouncer.summary(found)


def replication_state(workspace: "Workspace"):
    from ecoctl.clients.postgres import connect
    from ecoctl.clients.postgres_scaling import replication

    with connect(workspace.postgres) as conn:
        return replication(conn, scaling.REPLICATION_SLOT)


def with_details(workspace: "Workspace", rows: list[ComponentStatus]) -> list[ComponentStatus]:
    """ROWS, the running pooler's with its pools and the replica's with its lag (or why not)."""
    for row in rows:
        component = components.named(row.name)
        if component is None or not component.report or row.state != "running":
            continue
        try:
            line = (pools_line(workspace, component) if component.report == "pools"
                    else f"replication {replication_state(workspace).summary}")
        except EcoctlError as exc:
            line = f"unknown: {str(exc)[:160]}"
        row.detail = "; ".join(filter(None, [row.detail, line]))
    return rows


def doctor_checks(workspace: "Workspace", running: bool) -> list[Check]:
    """The replica streams from the primary (its slot active, lag small) and refuses writes; the
    pooler's console answers. Skipped while the stack is down."""
    ecosystem = workspace.ecosystem
    checks = []
    if components.pooler_enabled(ecosystem):
        if not running:
            checks.append(Check("pooler", "skip", "not running: `ecoctl up` starts it"))
        else:
            try:
                checks.append(Check("pooler", "ok", f"pgbouncer answers: {pools_line(workspace, components.PGBOUNCER)}"))
            except EcoctlError as exc:
                checks.append(Check("pooler", "fail", str(exc), "`ecoctl logs pgbouncer` says why; `ecoctl up` starts it"))
    if components.replica_enabled(ecosystem):
        checks.append(_replication_check(workspace, running))
    return checks


def _replication_check(workspace: "Workspace", running: bool) -> Check:
    if not running:
        return Check("replication", "skip", "not running: `ecoctl up` starts the replica")
    try:
        state = replication_state(workspace)
        read_only = _replica_read_only(workspace)
    except EcoctlError as exc:
        return Check("replication", "fail", str(exc)[:200], "`ecoctl logs postgres-replica` says why")
    if not state.exists:
        return Check("replication", "fail", state.summary, "run `ecoctl apply`, then `ecoctl up`")
    if state.state != "streaming":
        return Check("replication", "fail", state.summary,
                     "`ecoctl logs postgres-replica` says why; `ecoctl up` restarts it")
    if not read_only:
        return Check("replication", "fail", "the replica accepts writes (it is not in recovery)",
                     "`ecoctl down`, remove its data (.ecoctl/run/postgres-replica), `ecoctl up`")
    if state.replay_lag is not None and state.replay_lag > LAG_WARN_SECONDS:
        return Check("replication", "warn", state.summary, "the replica falls behind: check its disk and CPU")
    return Check("replication", "ok", f"{state.summary}; the replica is read-only")


def _replica_read_only(workspace: "Workspace") -> bool:
    import psycopg

    endpoint = workspace.postgres
    port = components.POSTGRES_REPLICA.ports[0].host(workspace.ecosystem)
    try:
        with psycopg.connect(host="127.0.0.1", port=port, dbname="postgres", user=endpoint.user,
                             password=endpoint.password, connect_timeout=3) as conn:
            return bool(conn.execute("select pg_is_in_recovery()").fetchone()[0])
    except psycopg.Error as exc:
        raise EcoctlError(f"the replica on 127.0.0.1:{port} did not answer: "
                          f"{str(exc).strip().splitlines()[-1]}") from None
