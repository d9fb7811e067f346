"""The `postgres` provider: one database and one login role per service, isolated; shared read.

- Each service S gets database `S_db` owned by `S_user` (password in .env as `S_DB_PASSWORD`, sent
  as a SCRAM verifier); PUBLIC may not connect, only the owner and S's readers.
- `reads: [T]` makes S_user a member of `T_readonly`, a NOLOGIN group with CONNECT on T_db, USAGE on
  its schemas, SELECT on its tables and sequences, and default privileges for what T_user creates
  later. There is no shared write: cross-service writes go through APIs.
- Roles and databases ecoctl creates carry the comment `managed by ecoctl`; only those are ever
  revoked or dropped. A removed service's database is kept unless it is in `options.drop_data`.
- One with a service's name that ecoctl did not create is a conflict unless `options.adopt`, and
  managed roles hold exactly ecoctl's attributes and memberships (see providers/postgres_roles.py).

Reading is five catalog queries for all services, on shared catalogs only (pg_authid,
pg_auth_members, pg_db_role_setting, pg_database, pg_shdepend): per-database facts (schema ownership, USAGE grants,
default privileges) are seen through pg_shdepend, so no database is visited to plan. SELECT on
existing tables is granted when the read-only group is created or repaired, never compared table
by table, so a new table is not drift.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ecoctl.contract import AUTHENTIK_DATABASE, db_password_key
from ecoctl.names import database_name, readonly_role_name, role_name
from ecoctl.plan import Change, Conflict, Provider
from ecoctl.providers import postgres_scaling
from ecoctl.providers.postgres_roles import CONFLICT_DETAIL, StripRole, conflict_message, strip, unowned_roles
from ecoctl.providers.postgres_state import CreateJournal, wrong_passwords

if TYPE_CHECKING:
    from ecoctl.clients.postgres import Actual, Admin  # noqa: F401
    from ecoctl.workspace import Workspace


@dataclass(frozen=True)
class ServiceDatabase:
    service: str
    database: str
    role: str
    password_key: str


@dataclass(frozen=True)
class ReadGroup:
    role: str
    target: ServiceDatabase
    members: tuple[str, ...]


@dataclass
class Desired:
    databases: dict[str, ServiceDatabase] = field(default_factory=dict)
    """By service name (Authentik's own database under `authentik`)."""
    groups: dict[str, ReadGroup] = field(default_factory=dict)
    """By group role name."""
    passwords: dict[str, str | None] = field(default_factory=dict, repr=False)
    """Role -> its password in .env."""

    @property
    def memberships(self) -> set[tuple[str, str]]:
        return {(member, group.role) for group in self.groups.values() for member in group.members}


def desired_state(workspace: "Workspace") -> Desired:
    ecosystem = workspace.ecosystem
    desired = Desired()
    for service in (name for name, spec in ecosystem.services.items() if spec.has_database):
        desired.databases[service] = ServiceDatabase(service, database_name(service), role_name(service),
                                                     db_password_key(service))
    if ecosystem.authentik_in_stack:
        desired.databases[AUTHENTIK_DATABASE] = ServiceDatabase(
            AUTHENTIK_DATABASE, AUTHENTIK_DATABASE, role_name(AUTHENTIK_DATABASE), db_password_key(AUTHENTIK_DATABASE))
    readers: dict[str, list[str]] = defaultdict(list)
    for service, spec in ecosystem.services.items():
        for target in spec.reads:
            readers[target].append(role_name(service))
    for target, members in readers.items():
        group = readonly_role_name(target)
        desired.groups[group] = ReadGroup(group, desired.databases[target], tuple(sorted(members)))
    desired.passwords = {db.role: workspace.env.get(db.password_key) for db in desired.databases.values()}
    return desired


@dataclass(frozen=True)
class LoginRole:
    db: ServiceDatabase


@dataclass(frozen=True)
class SetUpDatabase:
    db: ServiceDatabase
    allowed: frozenset[str]
    """Who may connect: its owner, its readers' group, the admin."""


@dataclass(frozen=True)
class SetUpReadGroup:
    group: ReadGroup


@dataclass(frozen=True)
class Membership:
    member: str
    group: str
    grant: bool


@dataclass(frozen=True)
class DropDatabase:
    name: str


@dataclass(frozen=True)
class DropRole:
    name: str


class PostgresProvider(Provider):
    name = "postgres"
    _admin: "Admin | None" = None

    @property
    def admin(self) -> "Admin":
        from ecoctl.clients.postgres import Admin

        if self._admin is None:
            self._admin = Admin.connect(self.workspace.postgres)
        return self._admin

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    def desired(self) -> Desired:
        return desired_state(self.workspace)

    def read(self) -> "Actual":
        actual = CreateJournal(self.workspace.state_dir).mark(self.admin.read_state())
        actual.scaling = postgres_scaling.read_scaling(self)  # the pooler's userlist, replication slots
        return actual

    def dropped_databases(self) -> set[str]:
        return {AUTHENTIK_DATABASE if service == AUTHENTIK_DATABASE else database_name(service)
                for service in self.options.drop_data}

    def diff(self, desired: Desired, actual: Actual) -> list[Change]:
        changes: list[Change] = []
        bad_passwords = wrong_passwords(desired.passwords, actual, self.workspace.state_dir)
        unowned = set() if self.options.adopt else unowned_roles(desired, actual)
        doomed = {name for name, role in actual.roles.items() if role.managed
                  and name not in desired.groups and name not in desired.passwords}
        for db in desired.databases.values():
            changes.extend(self._diff_role(db, desired, actual, bad_passwords, unowned, doomed))
        for db in desired.databases.values():
            changes.extend(self._diff_database(db, desired, actual, doomed))
        for group in desired.groups.values():
            changes.extend(self._diff_group(group, desired, actual, doomed, unowned))
        service_of = {db.role: db.service for db in desired.databases.values()}
        for member, group in sorted(desired.memberships):
            if member in unowned or group in unowned:
                continue
            if member not in actual.roles or group not in actual.roles[member].member_of:
                target = desired.groups[group].target.database
                changes.append(Change(self.name, "create", "membership", f"{member} in {group}",
                                      f"read-only access to {target}", service=service_of.get(member),
                                      payload=Membership(member, group, grant=True)))
        changes.extend(self._diff_removals(desired, actual))
        if getattr(actual, "scaling", None) is not None:
            roles = [db.role for db in desired.databases.values() if db.service != AUTHENTIK_DATABASE]
            changes.extend(postgres_scaling.diff_scaling(self, roles, actual, changes))
        return changes

    def _diff_role(self, db: ServiceDatabase, desired: Desired, actual: Actual,
                   bad_passwords: set[str], unowned: set[str], doomed: set[str]) -> list[Change]:
        password = desired.passwords.get(db.role)
        role = actual.roles.get(db.role)
        if role is None:
            detail = (f"password from .env {db.password_key}" if password
                      else f"new password saved in .env as {db.password_key}")
            return [Change(self.name, "create", "role", db.role, detail, service=db.service, payload=LoginRole(db))]
        if db.role in unowned:
            return [self.unowned("role", db.role, db.service)]
        reasons = []
        if not role.login:
            reasons.append("cannot log in")
        if not role.managed:
            reasons.append("adopt: mark managed by ecoctl")
        if not password:
            reasons.append(f"no {db.password_key} in .env: a new password is generated")
        elif db.role in bad_passwords:
            reasons.append(f"password differs from .env {db.password_key}")
        changes = [Change(self.name, "update", "role", db.role, "; ".join(reasons), service=db.service,
                          payload=LoginRole(db))] if reasons else []
        wanted = {group for member, group in desired.memberships if member == db.role}
        handled = {group for group in role.member_of if self._revoked_elsewhere(role, group, actual)}
        changes += strip(self.name, role, wanted, True, handled, db.service, actual.databases)
        return changes + self._foreign_members(db.role, desired, actual, doomed, db.service,
                                               f"may act as {db.role}: not granted by ecoctl")

    def _foreign_members(self, group: str, desired: Desired, actual: Actual, doomed: set[str],
                         service: str | None, why: str) -> list[Change]:
        """Revoking GROUP from each role in it that ecoctl did not put there: any but the admin and
        ecoctl's own roles (whose own diffs revoke what they should not hold)."""
        ours = desired.passwords.keys() | desired.groups.keys() | doomed
        return [Change(self.name, "delete", "membership", f"{name} in {group}", why, service=service,
                       payload=Membership(name, group, grant=False))
                for name, member in sorted(actual.roles.items())
                if group in member.member_of and name not in ours and name != actual.admin]

    @staticmethod
    def _revoked_elsewhere(role, group: str, actual: Actual) -> bool:
        """A managed role's membership in another managed read group: `_diff_removals` revokes it."""
        other = actual.roles.get(group)
        return role.managed and group.endswith("_readonly") and other is not None and other.managed

    def unowned(self, kind: str, name: str, service: str | None) -> Change:
        """The conflict of KIND ("role" or "database") NAME, which has a service's name but was not
        created by ecoctl (with --adopt, diff plans an adoption instead)."""
        return self.conflict(kind, name, CONFLICT_DETAIL, conflict_message(kind, name), service)

    def _allowed(self, db: ServiceDatabase, desired: Desired, admin: str) -> set[str]:
        """Who may connect to DB: its owner, its readers' group, and the admin."""
        allowed = {db.role, admin}
        allowed.update(group.role for group in desired.groups.values() if group.target == db)
        return allowed

    def _diff_database(self, db: ServiceDatabase, desired: Desired, actual: Actual,
                       doomed: set[str]) -> list[Change]:
        allowed = self._allowed(db, desired, actual.admin) | doomed  # doomed roles lose it when dropped
        state = actual.databases.get(db.database)
        if state is None:
            return [Change(self.name, "create", "database", db.database, f"owner {db.role}", service=db.service,
                           payload=SetUpDatabase(db, frozenset(self._allowed(db, desired, actual.admin))))]
        if not state.managed and not state.created_by_ecoctl and not self.options.adopt:
            return [self.unowned("database", db.database, db.service)]
        reasons = []
        if state.owner != db.role:
            reasons.append(f"owner is {state.owner}, not {db.role}")
        if not state.managed:
            reasons.append("mark managed by ecoctl: a run that created it was interrupted"
                           if state.created_by_ecoctl else "adopt: mark managed by ecoctl")
        if state.privileges.get("PUBLIC"):
            reasons.append("PUBLIC may connect")
        extra = sorted(grantee for grantee, privileges in state.privileges.items()
                       if grantee != "PUBLIC" and grantee not in allowed and "CONNECT" in privileges)
        if extra:
            reasons.append(f"revoke CONNECT from {', '.join(extra)}")
        if (db.database, db.role) not in actual.schema_owners:
            reasons.append(f"schema public not owned by {db.role}")
        if reasons:
            return [Change(self.name, "update", "database", db.database, "; ".join(reasons), service=db.service,
                           payload=SetUpDatabase(db, frozenset(self._allowed(db, desired, actual.admin))))]
        return []

    def _diff_group(self, group: ReadGroup, desired: Desired, actual: Actual, doomed: set[str],
                    unowned: set[str]) -> list[Change]:
        database = group.target.database
        role = actual.roles.get(group.role)
        if role is None:
            return [Change(self.name, "create", "role", group.role,
                           f"read-only access to {database}", service=group.target.service,
                           payload=SetUpReadGroup(group))]
        if group.role in unowned:
            return [self.unowned("role", group.role, group.target.service)]
        changes = strip(self.name, role, set(), False, set(), group.target.service, actual.databases)
        changes += self._foreign_members(group.role, desired, actual, doomed, None, "not one of its readers")
        reasons = []
        if role.login:
            reasons.append("can log in")
        if not role.managed:
            reasons.append("adopt: mark managed by ecoctl")
        state = actual.databases.get(database)
        if state is None:
            reasons.append(f"grant read access in new database {database}")
        else:
            if "CONNECT" not in state.privileges.get(group.role, ()):
                reasons.append(f"no CONNECT on {database}")
            if (database, group.role) not in actual.schema_usage:
                reasons.append(f"no USAGE on the schemas of {database}")
            if (database, group.role) not in actual.default_privileges:
                reasons.append(f"tables {group.target.role} creates later would not be readable")
        if reasons:
            changes.insert(0, Change(self.name, "update", "role", group.role, "; ".join(reasons),
                                     service=group.target.service, payload=SetUpReadGroup(group)))
        return changes

    def _diff_removals(self, desired: Desired, actual: Actual) -> list[Change]:
        changes: list[Change] = []
        wanted_roles = {db.role for db in desired.databases.values()}
        wanted_databases = {db.database for db in desired.databases.values()}
        managed = {name: role for name, role in actual.roles.items() if role.managed}
        wanted_memberships = desired.memberships
        for name in sorted(wanted_roles & managed.keys()):
            for group in sorted(managed[name].member_of):
                if group.endswith("_readonly") and group in managed and (name, group) not in wanted_memberships:
                    changes.append(Change(self.name, "delete", "membership", f"{name} in {group}",
                                          "no longer in its service's reads",
                                          payload=Membership(name, group, grant=False)))
        for name in sorted(managed):
            if name.endswith("_readonly") and name not in desired.groups:
                changes.append(Change(self.name, "delete", "role", name, "no service reads its database",
                                      payload=DropRole(name)))
        orphan_users = {name for name in managed if name.endswith("_user") and name not in wanted_roles}
        drop = self.dropped_databases()
        kept: dict[str, list[str]] = defaultdict(list)
        for name, state in sorted(actual.databases.items()):
            if name in wanted_databases or not (state.managed or state.owner in orphan_users):
                continue
            if name in drop:
                changes.append(Change(self.name, "delete", "database", name,
                                      "--drop-data: all its data is deleted",
                                      payload=DropDatabase(name)))
            elif state.owner in orphan_users:
                kept[state.owner].append(name)
        web_apps = {role_name(name) for name, spec in self.workspace.ecosystem.services.items()
                    if not spec.has_database}
        for name in sorted(orphan_users):
            detail = ("a web app needs no database role" if name in web_apps else "service removed") + \
                "; its grants are revoked"
            for database in kept[name]:
                detail += f"; database {database} kept (pass --drop-data to delete it)"
            changes.append(Change(self.name, "delete", "role", name, detail, payload=DropRole(name)))
        return changes

    # -- apply: each statement is the client's; errors become one line there --------------------

    def apply(self, change: Change) -> None:
        if isinstance(change.payload, Conflict):
            return super().apply(change)  # refused, with no server needed
        with self.admin.errors(f"applying `{change}`"):
            super().apply(change)

    def login_role(self, payload: LoginRole) -> None:
        password = self.workspace.secret(payload.db.password_key)
        self.admin.set_login_role(payload.db.role, password)

    def set_up_database(self, payload: SetUpDatabase) -> None:
        with CreateJournal(self.workspace.state_dir).creating(payload.db.database):
            self.admin.set_up_database(payload.db.database, payload.db.role, payload.allowed)

    def set_up_read_group(self, payload: SetUpReadGroup) -> None:
        group = payload.group
        self.admin.set_up_read_group(group.role, group.target.database, group.target.role)

    def membership(self, payload: Membership) -> None:
        self.admin.set_membership(payload.member, payload.group, payload.grant)

    def drop_database(self, payload: DropDatabase) -> None:
        self.admin.drop_database(payload.name)

    def drop_role(self, payload: DropRole) -> None:
        self.admin.drop_role(payload.name)

    def strip_role(self, payload: StripRole) -> None:
        from ecoctl.clients.postgres_roles import strip_role

        strip_role(self.admin.conn, payload.role, payload.clauses, payload.revoke, payload.databases,
                   payload.admin_options, payload.reset_in)

    appliers = {LoginRole: login_role, SetUpDatabase: set_up_database, SetUpReadGroup: set_up_read_group,
                Membership: membership, DropDatabase: drop_database, DropRole: drop_role, StripRole: strip_role,
                **postgres_scaling.APPLIERS}
