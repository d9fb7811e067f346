"""The postgres provider's part for the data layer's scaling: the pooler's userlist and the replica's
role and slot.

- `core.postgres.pooler`: `.ecoctl/pooler/userlist.txt` (0600) holds each service role's SCRAM
  verifier as PostgreSQL stores it (read from pg_authid), plus the pooler's stats user's, so
  pgbouncer checks clients with the services' own credentials and no password is on disk in plain
  text. It is rewritten (and the pooler reloaded) whenever a role's verifier changes.
- `core.postgres.replicas`: the replication role `ecoctl_replicator` (LOGIN REPLICATION, its
  password in .env as REPLICATION_PASSWORD) and the physical slot `ecoctl_replica_1`; with no
  replica the slot is dropped (a slot nobody reads keeps WAL forever).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ecoctl import components, scaling
from ecoctl.plan import Change

if TYPE_CHECKING:
    from ecoctl.clients.postgres import Actual


@dataclass
class ScalingState:
    slots: dict[str, bool]
    """Physical replication slots named like ecoctl's -> whether a standby streams from it."""
    userlist: dict[str, str] | None
    """The pooler's userlist as it is on disk (None: there is none)."""
    replication_allowed: bool = True
    """pg_hba.conf lets the replica's role stream from any address (asked only in containers)."""


@dataclass(frozen=True)
class SyncUserlist:
    roles: tuple[str, ...]


@dataclass(frozen=True)
class DropUserlist:
    pass


@dataclass(frozen=True)
class ReplicationRole:
    pass


@dataclass(frozen=True)
class ReplicationSlot:
    create: bool


@dataclass(frozen=True)
class AllowReplication:
    pass


def read_scaling(provider) -> ScalingState:
    from ecoctl.clients.postgres_scaling import read_slots

    path = provider.workspace.state_dir / scaling.USERLIST
    try:
        userlist = scaling.parse_userlist(path.read_text())
    except FileNotFoundError:
        userlist = None
    from ecoctl.clients.postgres_scaling import replication_allowed

    allowed = True
    with provider.admin.errors("reading the replication slots"):
        slots = read_slots(provider.admin.conn)
        if components.replica_enabled(provider.workspace.ecosystem) and provider.runtime.in_containers \
                and provider.admin.superuser:
            allowed = replication_allowed(provider.admin.conn, scaling.REPLICATION_ROLE)
    return ScalingState(slots, userlist, allowed)


def diff_scaling(provider, roles: list[str], actual: "Actual", changes: list[Change]) -> list[Change]:
    """The changes of the pooler's userlist (for ROLES, the services' login roles) and of the
    replica's role and slot; CHANGES (the provider's others) tell whether a verifier will change."""
    ecosystem = provider.workspace.ecosystem
    state: ScalingState = actual.scaling
    found = []
    if components.pooler_enabled(ecosystem) and actual.verifiers_known:
        stored = {role: actual.roles[role].verifier for role in roles
                  if role in actual.roles and actual.roles[role].verifier}
        current = dict(state.userlist or {})
        stats = current.pop(scaling.POOLER_STATS_USER, None)
        password = provider.workspace.env.get(scaling.POOLER_STATS_PASSWORD)
        from ecoctl.clients.postgres import verifier_matches

        reasons = []
        if state.userlist is None:
            reasons.append("pgbouncer checks clients with the services' SCRAM verifiers")
        else:
            if any(change.kind == "role" and change.name in roles for change in changes) or current != stored:
                reasons.append("a service role's verifier changed")
            if not password or not verifier_matches(stats, password):
                reasons.append(f"{scaling.POOLER_STATS_USER}'s verifier differs from .env {scaling.POOLER_STATS_PASSWORD}")
        if reasons:
            found.append(Change(provider.name, "create" if state.userlist is None else "update", "file",
                                str(scaling.USERLIST), "; ".join(reasons), payload=SyncUserlist(tuple(sorted(roles)))))
    elif state.userlist is not None and not components.pooler_enabled(ecosystem):
        found.append(Change(provider.name, "delete", "file", str(scaling.USERLIST), "no pooler",
                            payload=DropUserlist()))
    wanted = components.replica_enabled(ecosystem)
    role = actual.roles.get(scaling.REPLICATION_ROLE)
    if wanted:
        reasons = []
        if role is None:
            found.append(Change(provider.name, "create", "role", scaling.REPLICATION_ROLE,
                                f"the replica's login (password from .env {scaling.REPLICATION_PASSWORD})",
                                payload=ReplicationRole()))
        elif not role.managed and not provider.options.adopt:
            found.append(provider.conflict("role", scaling.REPLICATION_ROLE, "exists, not created by ecoctl: pass "
                                           "--adopt to take it over", f"role {scaling.REPLICATION_ROLE} exists "
                                           "and was not created by ecoctl: pass --adopt to take it over", None))
        else:
            from ecoctl.clients.postgres import verifier_matches

            password = provider.workspace.env.get(scaling.REPLICATION_PASSWORD)
            if not (role.login and role.replication and role.managed):
                reasons.append("LOGIN REPLICATION, managed by ecoctl")
            if actual.verifiers_known and (not password or not verifier_matches(role.verifier, password)):
                reasons.append(f"password differs from .env {scaling.REPLICATION_PASSWORD}")
            if reasons:
                found.append(Change(provider.name, "update", "role", scaling.REPLICATION_ROLE, "; ".join(reasons),
                                    payload=ReplicationRole()))
        if not state.replication_allowed:
            found.append(Change(provider.name, "update", "pg_hba.conf", scaling.REPLICATION_HBA,
                                "the replica's container streams from the container network",
                                payload=AllowReplication()))
        if scaling.REPLICATION_SLOT not in state.slots:
            found.append(Change(provider.name, "create", "replication slot", scaling.REPLICATION_SLOT,
                                "the primary keeps the WAL the replica has not received",
                                payload=ReplicationSlot(create=True)))
    elif scaling.REPLICATION_SLOT in state.slots:
        found.append(Change(provider.name, "delete", "replication slot", scaling.REPLICATION_SLOT,
                            "no replica: a slot nobody reads keeps WAL forever", payload=ReplicationSlot(create=False)))
    return found


def sync_userlist(provider, payload: SyncUserlist) -> None:
    from ecoctl.clients.postgres import scram_verifier, verifier_matches
    from ecoctl.clients.postgres_scaling import read_verifiers
    from ecoctl.support.atomic import write_atomic

    path = provider.workspace.state_dir / scaling.USERLIST
    verifiers = read_verifiers(provider.admin.conn, list(payload.roles))
    password = provider.workspace.secret(scaling.POOLER_STATS_PASSWORD)
    try:
        stats = scaling.parse_userlist(path.read_text()).get(scaling.POOLER_STATS_USER)
    except FileNotFoundError:
        stats = None
    if not verifier_matches(stats, password):
        stats = scram_verifier(provider.admin.conn, scaling.POOLER_STATS_USER, password)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, scaling.userlist_text({**verifiers, scaling.POOLER_STATS_USER: stats}), mode=0o600)
    reload = provider.runtime.reload_component
    if reload is not None:
        reload(components.PGBOUNCER.name)


def drop_userlist(provider, payload: DropUserlist) -> None:
    (provider.workspace.state_dir / scaling.USERLIST).unlink(missing_ok=True)


def replication_role(provider, payload: ReplicationRole) -> None:
    from ecoctl.clients.postgres_scaling import set_replication_role

    set_replication_role(provider.admin.conn, scaling.REPLICATION_ROLE,
                         provider.workspace.secret(scaling.REPLICATION_PASSWORD))


def replication_slot(provider, payload: ReplicationSlot) -> None:
    from ecoctl.clients.postgres_scaling import create_slot, drop_slot

    (create_slot if payload.create else drop_slot)(provider.admin.conn, scaling.REPLICATION_SLOT)


def allow_replication(provider, payload: AllowReplication) -> None:
    from ecoctl.clients.postgres_scaling import allow_replication as allow

    allow(provider.admin.conn, scaling.REPLICATION_HBA)


APPLIERS = {AllowReplication: allow_replication, SyncUserlist: sync_userlist, DropUserlist: drop_userlist, ReplicationRole: replication_role,
            ReplicationSlot: replication_slot}
