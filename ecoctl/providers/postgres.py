"""The `postgres` provider: one database and one login role per service, isolated; shared read.

- Each service S gets database `S_db` owned by `S_user` (password in .env as `S_DB_PASSWORD`, sent
  as a SCRAM verifier); PUBLIC may not connect, only the owner and S's readers.
- `reads: [T]` makes S_user a member of `T_readonly`, a NOLOGIN group with CONNECT on T_db, USAGE on
  its schemas, SELECT on its tables and sequences, and default privileges for what T_user creates
  later. There is no shared write: cross-service writes go through APIs.
- Roles and databases ecoctl creates carry the comment `managed by ecoctl`; only those are ever
  revoked or dropped. A removed service's database is kept unless its name is in `drop_data`.

Reading is four catalog queries for all services, on shared catalogs only (pg_authid,
pg_auth_members, pg_database, pg_shdepend): per-database facts (schema ownership, USAGE grants,
default privileges) are seen through pg_shdepend, so no database is visited to plan. SELECT on
existing tables is granted when the read-only group is created or repaired, never compared table
by table, so a new table is not drift.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from ecoctl.errors import EcoctlError
from ecoctl.files import write_atomic
from ecoctl.names import database_name, readonly_role_name, role_name
from ecoctl.plan import Change, Provider

if TYPE_CHECKING:
    import psycopg

    from ecoctl.workspace import Workspace

MANAGED = "managed by ecoctl"
AUTHENTIK = "authentik"
ADMIN_DB = "postgres"


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
    """Role -> its password in .env (None when .env has none yet)."""

    @property
    def memberships(self) -> set[tuple[str, str]]:
        return {(member, group.role) for group in self.groups.values() for member in group.members}


@dataclass
class RoleState:
    name: str
    login: bool
    managed: bool
    verifier: str | None
    member_of: frozenset[str]


@dataclass
class DatabaseState:
    name: str
    owner: str
    managed: bool
    privileges: dict[str, set[str]]
    """Grantee ("PUBLIC" for everyone) -> privileges (CONNECT, CREATE, TEMPORARY)."""


@dataclass
class Actual:
    admin: str
    superuser: bool
    roles: dict[str, RoleState]
    databases: dict[str, DatabaseState]
    schema_owners: set[tuple[str, str]]
    """(database, role): the role owns a schema in that database."""
    schema_usage: set[tuple[str, str]]
    """(database, role): the role holds a privilege on a schema in that database."""
    default_privileges: set[tuple[str, str]]
    """(database, role): default privileges in that database grant the role something."""

    @property
    def verifiers_known(self) -> bool:
        return self.superuser


def desired_state(workspace: "Workspace") -> Desired:
    from ecoctl.names import db_password_key as password_key

    ecosystem = workspace.ecosystem
    desired = Desired()
    for service in ecosystem.services:
        desired.databases[service] = ServiceDatabase(service, database_name(service), role_name(service),
                                                     password_key(service))
    if ecosystem.core.authentik.url is None:
        desired.databases[AUTHENTIK] = ServiceDatabase(AUTHENTIK, AUTHENTIK, role_name(AUTHENTIK),
                                                       password_key(AUTHENTIK))
    readers: dict[str, list[str]] = defaultdict(list)
    for service, spec in ecosystem.services.items():
        for target in spec.reads:
            readers[target].append(role_name(service))
    for target, members in readers.items():
        group = readonly_role_name(target)
        desired.groups[group] = ReadGroup(group, desired.databases[target], tuple(sorted(members)))
    desired.passwords = {db.role: workspace.env.get(db.password_key) for db in desired.databases.values()}
    return desired


ROLES_SQL = """
select r.rolname, r.rolcanlogin, coalesce(shobj_description(r.oid, 'pg_authid') = %(managed)s, false),
       {password},
       array(select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid
             where m.member = r.oid)
from {catalog} r where r.rolname !~ '^pg_'
"""

DATABASES_SQL = """
select d.datname, pg_get_userbyid(d.datdba),
       coalesce(shobj_description(d.oid, 'pg_database') = %(managed)s, false),
       case when a.grantee = 0 then 'PUBLIC' else pg_get_userbyid(a.grantee) end, a.privilege_type
from pg_database d
left join lateral aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a on true
where not d.datistemplate
"""

# Objects inside every database that depend on a role, read from the shared catalog pg_shdepend:
# 'o' = the role owns it, 'a' = it is named in its ACL.
DEPENDENCIES_SQL = """
select d.datname, r.rolname, s.classid::regclass::text, s.deptype
from pg_shdepend s
join pg_database d on d.oid = s.dbid
join pg_roles r on r.oid = s.refobjid and s.refclassid = 'pg_authid'::regclass
where s.classid in ('pg_namespace'::regclass, 'pg_default_acl'::regclass)
  and r.rolname ~ '_(user|readonly)$'
group by 1, 2, 3, 4
"""


def read_state(conn: "psycopg.Connection", superuser: bool) -> Actual:
    from psycopg import sql

    params = {"managed": MANAGED}
    roles_sql = sql.SQL(ROLES_SQL).format(
        password=sql.SQL("r.rolpassword" if superuser else "null::text"),
        catalog=sql.Identifier("pg_authid" if superuser else "pg_roles"))
    admin = conn.info.parameter_status("session_authorization") or ""
    roles = {name: RoleState(name, login, managed, verifier, frozenset(groups))
             for name, login, managed, verifier, groups in conn.execute(roles_sql, params)}
    databases: dict[str, DatabaseState] = {}
    for name, owner, managed, grantee, privilege in conn.execute(DATABASES_SQL, params):
        state = databases.setdefault(name, DatabaseState(name, owner, managed, {}))
        if grantee is not None:
            state.privileges.setdefault(grantee, set()).add(privilege)
    owners, usage, defaults = set(), set(), set()
    for database, role, catalog, deptype in conn.execute(DEPENDENCIES_SQL):
        if catalog == "pg_namespace":
            (owners if deptype == "o" else usage).add((database, role))
        elif deptype == "a":
            defaults.add((database, role))
    return Actual(admin, superuser, roles, databases, owners, usage, defaults)


VERIFIED_FILE = "postgres-verified.json"


def wrong_passwords(desired: Desired, actual: Actual, state_dir: Path | None = None) -> set[str]:
    """Roles whose stored verifier is not the password .env holds (checked only as a superuser).

    Checking a verifier costs one PBKDF2 (4096 rounds). `state_dir/postgres-verified.json` (0600)
    remembers, per role, an HMAC of the verifier keyed by the password that matched it, so a plan
    with nothing changed skips the PBKDF2s; any change of verifier or password misses the cache.
    """
    import json

    from ecoctl.postgres_admin import verifier_matches

    if not actual.verifiers_known:
        return set()
    cache_file = state_dir / VERIFIED_FILE if state_dir else None
    try:
        cache = json.loads(cache_file.read_text()) if cache_file else {}
    except (OSError, ValueError):
        cache = {}
    fresh = {}
    checks = []
    for role, password in desired.passwords.items():
        if not password or role not in actual.roles:
            continue
        verifier = actual.roles[role].verifier or ""
        token = hmac.new(password.encode(), verifier.encode(), hashlib.sha256).hexdigest()
        if cache.get(role) == token:
            fresh[role] = token
        else:
            checks.append((role, verifier, password, token))
    wrong = set()
    if checks:
        # pbkdf2 releases the GIL: two threads halve the time when many roles need checking
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = pool.map(lambda check: verifier_matches(check[1], check[2]), checks)
            for (role, _, _, token), ok in zip(checks, results):
                if ok:
                    fresh[role] = token
                else:
                    wrong.add(role)
    if cache_file and fresh != cache:
        try:
            write_atomic(cache_file, json.dumps(fresh, sort_keys=True), mode=0o600)
        except OSError:
            pass  # only a cache: the next plan checks again
    return wrong


OWNED_RELATIONS_SQL = """
select n.nspname, c.relname, c.relkind
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relowner = %(owner)s::regrole and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
  and n.nspname !~ '^pg_' and n.nspname <> 'information_schema'
  and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid
                  and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i') and c.relkind = 'S')
"""
ALTER_KIND = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE",
              "f": "FOREIGN TABLE"}


def hand_over_objects(conn: "psycopg.Connection", previous: str, owner: str) -> None:
    """Give OWNER the schemas and relations PREVIOUS owns in this database.

    A removed service's kept database was handed to the admin; when the service comes back, its
    role gets its tables back (sequences that belong to a table follow their table).
    """
    from psycopg import sql

    new = sql.Identifier(owner)
    for (schema,) in conn.execute("select nspname from pg_namespace where nspowner = %s::regrole "
                                  "and nspname !~ '^pg_' and nspname <> 'information_schema'",
                                  (previous,)).fetchall():
        conn.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(schema), new))
    for schema, relation, kind in conn.execute(OWNED_RELATIONS_SQL, {"owner": previous}).fetchall():
        conn.execute(sql.SQL("ALTER {} {} OWNER TO {}").format(
            sql.SQL(ALTER_KIND[kind]), sql.Identifier(schema, relation), new))


class PostgresProvider(Provider):
    name = "postgres"

    def __init__(self, workspace: "Workspace", drop_data: Iterable[str] = ()):
        super().__init__(workspace)
        self.drop_data = set(drop_data)
        """Services whose database is deleted when they are removed (`--drop-data`)."""
        self._conn: "psycopg.Connection | None" = None
        self._superuser = False

    # -- connection -----------------------------------------------------------------------

    @property
    def endpoint(self):
        return self.workspace.postgres

    def conn(self) -> "psycopg.Connection":
        from ecoctl.postgres_admin import check_admin, connect

        if self._conn is None or self._conn.closed:
            conn = connect(self.endpoint, ADMIN_DB)
            try:
                self._superuser = check_admin(conn, self.endpoint)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def database_conn(self, database: str) -> "psycopg.Connection":
        from ecoctl.postgres_admin import connect

        return connect(self.endpoint, database)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- read / desired / diff ---------------------------------------------------------------

    def desired(self) -> Desired:
        return desired_state(self.workspace)

    def read(self) -> Actual:
        conn = self.conn()
        return read_state(conn, self._superuser)

    def dropped_databases(self) -> set[str]:
        return {AUTHENTIK if service == AUTHENTIK else database_name(service) for service in self.drop_data}

    def diff(self, desired: Desired, actual: Actual) -> list[Change]:
        changes: list[Change] = []
        bad_passwords = wrong_passwords(desired, actual, self.workspace.state_dir)
        for db in desired.databases.values():
            changes.extend(self._diff_role(db, desired, actual, bad_passwords))
        doomed = {name for name, role in actual.roles.items() if role.managed
                  and name not in desired.groups and name not in desired.passwords}
        for db in desired.databases.values():
            changes.extend(self._diff_database(db, desired, actual, doomed))
        for group in desired.groups.values():
            changes.extend(self._diff_group(group, actual))
        for member, group in sorted(desired.memberships):
            if member not in actual.roles or group not in actual.roles[member].member_of:
                target = desired.groups[group].target.database
                changes.append(Change(self.name, "create", "membership", f"{member} in {group}",
                                      f"read-only access to {target}", data=(member, group)))
        changes.extend(self._diff_removals(desired, actual))
        return changes

    def _diff_role(self, db: ServiceDatabase, desired: Desired, actual: Actual,
                   bad_passwords: set[str]) -> list[Change]:
        password = desired.passwords.get(db.role)
        role = actual.roles.get(db.role)
        if role is None:
            detail = (f"password from .env {db.password_key}" if password
                      else f"new password saved in .env as {db.password_key}")
            return [Change(self.name, "create", "role", db.role, detail, data=db)]
        reasons = []
        if not role.login:
            reasons.append("cannot log in")
        if not role.managed:
            reasons.append("adopt: mark managed by ecoctl")
        if not password:
            reasons.append(f"no {db.password_key} in .env: a new password is generated")
        elif db.role in bad_passwords:
            reasons.append(f"password differs from .env {db.password_key}")
        if reasons:
            return [Change(self.name, "update", "role", db.role, "; ".join(reasons), data=db)]
        return []

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
            return [Change(self.name, "create", "database", db.database, f"owner {db.role}", data=db)]
        reasons = []
        if state.owner != db.role:
            reasons.append(f"owner is {state.owner}, not {db.role}")
        if not state.managed:
            reasons.append("adopt: mark managed by ecoctl")
        if state.privileges.get("PUBLIC"):
            reasons.append("PUBLIC may connect")
        extra = sorted(grantee for grantee, privileges in state.privileges.items()
                       if grantee != "PUBLIC" and grantee not in allowed and "CONNECT" in privileges)
        if extra:
            reasons.append(f"revoke CONNECT from {', '.join(extra)}")
        if (db.database, db.role) not in actual.schema_owners:
            reasons.append(f"schema public not owned by {db.role}")
        if reasons:
            return [Change(self.name, "update", "database", db.database, "; ".join(reasons), data=db)]
        return []

    def _diff_group(self, group: ReadGroup, actual: Actual) -> list[Change]:
        database = group.target.database
        role = actual.roles.get(group.role)
        if role is None:
            return [Change(self.name, "create", "role", group.role,
                           f"read-only access to {database}", data=group)]
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
            return [Change(self.name, "update", "role", group.role, "; ".join(reasons), data=group)]
        return []

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
                                          "no longer in its service's reads", data=(name, group)))
        for name in sorted(managed):
            if name.endswith("_readonly") and name not in desired.groups:
                changes.append(Change(self.name, "delete", "role", name, "no service reads its database",
                                      data=name))
        orphan_users = {name for name in managed if name.endswith("_user") and name not in wanted_roles}
        drop = self.dropped_databases()
        kept: dict[str, list[str]] = defaultdict(list)
        for name, state in sorted(actual.databases.items()):
            if name in wanted_databases or not (state.managed or state.owner in orphan_users):
                continue
            if name in drop:
                changes.append(Change(self.name, "delete", "database", name,
                                      "--drop-data: all its data is deleted", data=name))
            elif state.owner in orphan_users:
                kept[state.owner].append(name)
        for name in sorted(orphan_users):
            detail = "service removed; its grants are revoked"
            for database in kept[name]:
                detail += f"; database {database} kept (pass --drop-data to delete it)"
            changes.append(Change(self.name, "delete", "role", name, detail, data=name))
        return changes

    # -- apply -------------------------------------------------------------------------------

    def apply(self, change: Change) -> None:
        import psycopg

        from ecoctl.postgres_admin import connection_error

        try:
            if change.kind == "role" and change.action != "delete":
                if isinstance(change.data, ReadGroup):
                    self._apply_group(change.data)
                else:
                    self._apply_login_role(change.data)
            elif change.kind == "database" and change.action != "delete":
                self._apply_database(change.data)
            elif change.kind == "membership":
                self._apply_membership(change.action, *change.data)
            elif change.kind == "database":
                self._drop_database(change.data)
            elif change.kind == "role":
                self._drop_role(change.data)
            else:
                raise ValueError(f"postgres provider cannot apply {change}")
        except psycopg.OperationalError as exc:
            raise connection_error(self.endpoint, ADMIN_DB, exc) from None
        except psycopg.Error as exc:
            message = exc.diag.message_primary or str(exc).splitlines()[0]
            raise EcoctlError(f"PostgreSQL at {self.endpoint.address} refused `{change}`: {message}: "
                              "fix the cause and run `ecoctl apply` again") from None

    def _comment(self, conn, kind: str, name: str) -> None:
        from psycopg import sql

        conn.execute(sql.SQL("COMMENT ON {} {} IS {}").format(
            sql.SQL(kind), sql.Identifier(name), sql.Literal(MANAGED)))

    def _role_exists(self, conn, name: str) -> bool:
        return conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone() is not None

    def _apply_login_role(self, db: ServiceDatabase) -> None:
        from psycopg import sql

        from ecoctl.postgres_admin import scram_verifier

        env = self.workspace.env
        if env.ensure_secret(db.password_key):
            env.save()  # before the server hears of it: a kill in between is finished by the next apply
        conn = self.conn()
        verifier = sql.Literal(scram_verifier(conn, db.role, env.get(db.password_key)))
        verb = "ALTER" if self._role_exists(conn, db.role) else "CREATE"
        with conn.transaction():
            conn.execute(sql.SQL(verb + " ROLE {} WITH LOGIN INHERIT PASSWORD {}").format(
                sql.Identifier(db.role), verifier))
            self._comment(conn, "ROLE", db.role)
            self._grant_admin_set_role(conn, db.role)

    def _grant_admin_set_role(self, conn, role: str) -> None:
        """A non-superuser admin must act as the owners it assigns (SET and INHERIT since PG16)."""
        from psycopg import sql

        if self._superuser:
            return
        option = sql.SQL(" WITH INHERIT TRUE, SET TRUE") if conn.info.server_version >= 160000 else sql.SQL("")
        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER{}").format(sql.Identifier(role), option))

    def _apply_database(self, db: ServiceDatabase) -> None:
        from psycopg import sql

        conn = self.conn()
        name, owner = sql.Identifier(db.database), sql.Identifier(db.role)
        row = conn.execute("select pg_get_userbyid(datdba) from pg_database where datname = %s",
                           (db.database,)).fetchone()
        if row is None:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(name, owner))
        previous_owner = row[0] if row else db.role
        allowed = self._allowed(db, self.desired(), self._admin(conn))
        grantees = {row[0] for row in conn.execute(
            "select pg_get_userbyid(a.grantee) from pg_database d, aclexplode(d.datacl) a "
            "where d.datname = %s and a.grantee <> 0", (db.database,))}
        with conn.transaction():
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(name, owner))
            self._comment(conn, "DATABASE", db.database)
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
            for grantee in sorted(grantees - allowed):
                conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(
                    name, sql.Identifier(grantee)))
            conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(name, owner))
            if not self._superuser:
                conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO CURRENT_USER").format(name))
        with self.database_conn(db.database) as dbconn, dbconn.transaction():
            dbconn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS public AUTHORIZATION {}").format(owner))
            dbconn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(owner))
            dbconn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            if previous_owner != db.role:
                hand_over_objects(dbconn, previous_owner, db.role)

    def _admin(self, conn) -> str:
        return conn.info.parameter_status("session_authorization") or ""

    def _apply_group(self, group: ReadGroup) -> None:
        from psycopg import sql

        conn = self.conn()
        role, owner = sql.Identifier(group.role), sql.Identifier(group.target.role)
        database = sql.Identifier(group.target.database)
        with conn.transaction():
            if not self._role_exists(conn, group.role):
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(role))
            conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(role))
            self._comment(conn, "ROLE", group.role)
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, role))
        with self.database_conn(group.target.database) as dbconn, dbconn.transaction():
            schemas = [row[0] for row in dbconn.execute(
                "select nspname from pg_namespace where nspname !~ '^pg_' and nspname <> 'information_schema'")]
            for schema in schemas:
                name = sql.Identifier(schema)
                dbconn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(name, role))
                dbconn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(name, role))
                dbconn.execute(sql.SQL("GRANT SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(name, role))
            for objects, privilege in (("TABLES", "SELECT"), ("SEQUENCES", "SELECT"), ("SCHEMAS", "USAGE")):
                dbconn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT {} ON {} TO {}").format(
                    owner, sql.SQL(privilege), sql.SQL(objects), role))

    def _apply_membership(self, action: str, member: str, group: str) -> None:
        from psycopg import sql

        statement = "GRANT {} TO {}" if action == "create" else "REVOKE {} FROM {}"
        self.conn().execute(sql.SQL(statement).format(sql.Identifier(group), sql.Identifier(member)))

    def _drop_database(self, name: str) -> None:
        from psycopg import sql

        self.conn().execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _drop_role(self, name: str) -> None:
        """Hand what the role owns to the admin and revoke its grants in every database it touched."""
        from psycopg import sql

        conn = self.conn()
        if not self._role_exists(conn, name):
            return
        touched = [row[0] for row in conn.execute(
            "select distinct d.datname from pg_shdepend s join pg_database d on d.oid = s.dbid "
            "join pg_roles r on r.oid = s.refobjid and s.refclassid = 'pg_authid'::regclass "
            "where r.rolname = %s and d.datallowconn", (name,))]
        role = sql.Identifier(name)
        for database in sorted({ADMIN_DB, *touched}):
            with self.database_conn(database) as dbconn, dbconn.transaction():
                dbconn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(role))
                dbconn.execute(sql.SQL("DROP OWNED BY {}").format(role))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))
