"""Talking to PostgreSQL as the admin: connecting (with one-line errors), reading the catalogs for
every service at once, SCRAM verifiers, and the statements ecoctl runs. No desired state lives here.

Passwords reach the server only as SCRAM-SHA-256 verifiers computed here, so a server that logs
statements never records a plaintext. Only imported by commands that talk to PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from ecoctl.errors import EcoctlError, Unreachable

if TYPE_CHECKING:
    from ecoctl.workspace import PostgresEndpoint

MANAGED = "managed by ecoctl"
"""The comment on every role and database ecoctl created: only those are ever changed or dropped."""
ADMIN_DB = "postgres"


def connect(endpoint: "PostgresEndpoint", dbname: str = "postgres", *,
            autocommit: bool = True) -> psycopg.Connection:
    """A connection as the admin user, or a one-line `Unreachable`/`EcoctlError` naming host:port."""
    try:
        return psycopg.connect(host=endpoint.host, port=endpoint.port, user=endpoint.user,
                               password=endpoint.password, dbname=dbname, sslmode=endpoint.sslmode,
                               connect_timeout=5, autocommit=autocommit,
                               application_name="ecoctl")
    except psycopg.OperationalError as exc:
        raise connection_error(endpoint, dbname, exc) from None


def connection_error(endpoint: "PostgresEndpoint", dbname: str, exc: Exception) -> EcoctlError:
    """One line for a failed connection. libpq reports no SQLSTATE while connecting, so this is the
    one place its message text is read; errors inside a session go through `session_error`."""
    text = str(exc)
    where = f"PostgreSQL at {endpoint.address}"
    if "password authentication failed" in text or "no password supplied" in text:
        return EcoctlError(f"{where} rejected the password of user {endpoint.user!r}: check the admin "
                           "password in .env (POSTGRES_PASSWORD, or the external block's password_env)")
    if "does not exist" in text and "role" in text:
        return EcoctlError(f"{where} has no role {endpoint.user!r}: set the admin user in ecosystem.yaml "
                           "(core.postgres.external.admin_user)")
    if "does not exist" in text and "database" in text:
        return EcoctlError(f"{where} has no database {dbname!r}: run `ecoctl apply` to create it")
    if "pg_hba.conf" in text:
        return EcoctlError(f"{where} refuses connections from this host for user {endpoint.user!r}: "
                           "allow it in the server's pg_hba.conf")
    if "SSL" in text or "ssl" in text:
        return EcoctlError(f"{where}: SSL negotiation failed: check core.postgres.external.sslmode")
    if "starting up" in text or "shutting down" in text or "recovery" in text:
        return Unreachable(f"{where} is starting or stopping: wait a moment and retry")
    return Unreachable(f"{where} does not answer: start the stack with `ecoctl up`, or check the "
                       "host and port in ecosystem.yaml")


def session_error(endpoint: "PostgresEndpoint", doing: str, exc: "psycopg.Error") -> EcoctlError:
    """One line for an error inside a session, by SQLSTATE class: 08 (connection) and 57 (the server
    shutting down or cancelling) mean the server went away; anything else refused what we asked."""
    where = f"PostgreSQL at {endpoint.address}"
    state = exc.sqlstate or ""
    if isinstance(exc, psycopg.OperationalError) and not state or state[:2] in ("08", "57"):
        return Unreachable(f"{where} went away while ecoctl was {doing}: start it (`ecoctl up`) and run "
                           "the command again; what was done is kept and the rest is planned again")
    message = exc.diag.message_primary or str(exc).splitlines()[0]
    return EcoctlError(f"{where} refused {doing}: {message}: fix the cause and run `ecoctl apply` again")


def check_admin(conn: psycopg.Connection, endpoint: "PostgresEndpoint") -> bool:
    """Raise unless the admin may create roles and databases; returns whether it is a superuser."""
    try:
        row = conn.execute("select rolsuper, rolcreaterole, rolcreatedb from pg_roles "
                           "where rolname = current_user").fetchone()
    except psycopg.Error as exc:  # the server went away right after the connection was made
        raise session_error(endpoint, "checking the admin user's rights", exc) from None
    superuser, createrole, createdb = row
    if superuser:
        return True
    missing = [name for name, ok in (("CREATEROLE", createrole), ("CREATEDB", createdb)) if not ok]
    if missing:
        attrs = " ".join(missing)
        raise EcoctlError(f"PostgreSQL user {endpoint.user!r} at {endpoint.address} lacks {attrs}: run "
                          f"`ALTER ROLE {endpoint.user} {attrs}` as a superuser, or use a superuser")
    return False


def scram_verifier(conn: psycopg.Connection, role: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier of PASSWORD, computed client-side (the server never sees it)."""
    return conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()


def verifier_matches(verifier: str | None, password: str) -> bool:
    """Whether a stored `SCRAM-SHA-256$iter:salt$StoredKey:ServerKey` verifier is PASSWORD's."""
    try:
        method, rest = verifier.split("$", 1)
        params, keys = rest.split("$", 1)
        iterations, salt = params.split(":", 1)
        stored_key = keys.split(":", 1)[0]
        if method != "SCRAM-SHA-256":
            return False
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt),
                                     int(iterations))
    except (AttributeError, ValueError):
        return False
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), base64.b64decode(stored_key))


def set_role_password(conn: psycopg.Connection, role: str, password: str) -> None:
    verifier = scram_verifier(conn, role, password)
    conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
        sql.Identifier(role), sql.Literal(verifier)))


@dataclass
class RoleState:
    name: str
    login: bool
    managed: bool
    verifier: str | None
    member_of: frozenset[str]
    superuser: bool = False
    createrole: bool = False
    createdb: bool = False
    replication: bool = False
    bypassrls: bool = False
    inherit: bool = True
    connlimit: int = -1
    valid_until: str | None = None
    """Set (a timestamp, as text) when the password expires; None for never (or infinity)."""
    admin_of: frozenset[str] = frozenset()
    """The roles it may grant to others (a membership WITH ADMIN OPTION)."""
    settings: frozenset[tuple[str, str]] = frozenset()
    """(database, "name=value") set on the role (`ALTER ROLE ... [IN DATABASE d] SET`); "" = all databases."""


@dataclass
class DatabaseState:
    name: str
    owner: str
    managed: bool
    privileges: dict[str, set[str]]
    """Grantee ("PUBLIC" for everyone) -> privileges (CONNECT, CREATE, TEMPORARY)."""
    created_by_ecoctl: bool = False
    """Unmarked, but created by an ecoctl run that was killed before it could mark it (the
    postgres provider's journal says so)."""


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


ROLES_SQL = """
select r.rolname, r.rolcanlogin, coalesce(shobj_description(r.oid, 'pg_authid') = %(managed)s, false),
       {password},
       array(select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid
             where m.member = r.oid),
       r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls, r.rolinherit,
       r.rolconnlimit, case when r.rolvaliduntil < 'infinity' then r.rolvaliduntil::text end,
       array(select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid
             where m.member = r.oid and m.admin_option)
from {catalog} r where r.rolname !~ '^pg_'
"""

DATABASES_SQL = """
select d.datname, pg_get_userbyid(d.datdba),
       coalesce(shobj_description(d.oid, 'pg_database') = %(managed)s, false),
       case when a.grantee = 0 then 'PUBLIC' else pg_get_userbyid(a.grantee) end, a.privilege_type
from pg_database d
left join lateral aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a on true
where not d.datistemplate or d.datname = 'template1'
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
    from ecoctl.clients.postgres_roles import role_settings

    settings = role_settings(conn)
    roles = {name: RoleState(name, login, managed, verifier, frozenset(groups), *attributes, frozenset(admin_of),
                             settings.get(name, frozenset()))
             for name, login, managed, verifier, groups, *attributes, admin_of in conn.execute(roles_sql, params)}
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


class Admin:
    """A session as the admin user on the admin database; each method is one idempotent step."""

    def __init__(self, endpoint: "PostgresEndpoint", conn: psycopg.Connection, superuser: bool):
        self.endpoint, self.conn, self.superuser = endpoint, conn, superuser

    @classmethod
    def connect(cls, endpoint: "PostgresEndpoint") -> "Admin":
        conn = connect(endpoint, ADMIN_DB)
        try:
            return cls(endpoint, conn, check_admin(conn, endpoint))
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def errors(self, doing: str):
        """Any psycopg error inside becomes one line naming the server and what was being done."""
        try:
            yield
        except psycopg.Error as exc:
            raise session_error(self.endpoint, doing, exc) from None

    def database(self, name: str) -> psycopg.Connection:
        return connect(self.endpoint, name)

    @property
    def name(self) -> str:
        return self.conn.info.parameter_status("session_authorization") or ""

    def read_state(self) -> Actual:
        with self.errors("reading the catalogs"):
            return read_state(self.conn, self.superuser)

    def role_exists(self, name: str) -> bool:
        with self.errors(f"looking up role {name}"):
            return self.conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone() is not None

    def _mark_managed(self, conn: psycopg.Connection, kind: str, name: str) -> None:
        conn.execute(sql.SQL("COMMENT ON {} {} IS {}").format(sql.SQL(kind), sql.Identifier(name), sql.Literal(MANAGED)))

    def _act_as(self, role: str) -> None:
        """A non-superuser admin must act as the owners it assigns (SET and INHERIT since PG16)."""
        if self.superuser:
            return
        option = sql.SQL(" WITH INHERIT TRUE, SET TRUE") if self.conn.info.server_version >= 160000 else sql.SQL("")
        self.conn.execute(sql.SQL("GRANT {} TO CURRENT_USER{}").format(sql.Identifier(role), option))

    def set_login_role(self, role: str, password: str) -> None:
        verifier = sql.Literal(scram_verifier(self.conn, role, password))
        verb = "ALTER" if self.role_exists(role) else "CREATE"
        with self.conn.transaction():
            self.conn.execute(sql.SQL(verb + " ROLE {} WITH LOGIN INHERIT PASSWORD {}").format(
                sql.Identifier(role), verifier))
            self._mark_managed(self.conn, "ROLE", role)
            self._act_as(role)

    def set_up_database(self, database: str, owner_role: str, allowed: frozenset[str]) -> None:
        """DATABASE exists, owned by OWNER_ROLE (with its public schema), connectable only by ALLOWED."""
        conn = self.conn
        name, owner = sql.Identifier(database), sql.Identifier(owner_role)
        row = conn.execute("select pg_get_userbyid(datdba) from pg_database where datname = %s",
                           (database,)).fetchone()
        if row is None:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(name, owner))
        previous_owner = row[0] if row else owner_role
        grantees = {row[0] for row in conn.execute(
            "select pg_get_userbyid(a.grantee) from pg_database d, aclexplode(d.datacl) a "
            "where d.datname = %s and a.grantee <> 0", (database,))}
        with conn.transaction():
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(name, owner))
            self._mark_managed(conn, "DATABASE", database)
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
            for grantee in sorted(grantees - set(allowed) - {self.name}):
                conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(name, sql.Identifier(grantee)))
            conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(name, owner))
            if not self.superuser:
                conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO CURRENT_USER").format(name))
        with self.database(database) as dbconn, dbconn.transaction():
            dbconn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS public AUTHORIZATION {}").format(owner))
            dbconn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(owner))
            dbconn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            if previous_owner != owner_role:
                hand_over_objects(dbconn, previous_owner, owner_role)

    def set_up_read_group(self, group: str, database: str, owner_role: str) -> None:
        """GROUP: NOLOGIN, may read everything OWNER_ROLE has and will create in DATABASE."""
        role, owner, db = sql.Identifier(group), sql.Identifier(owner_role), sql.Identifier(database)
        with self.conn.transaction():
            if not self.role_exists(group):
                self.conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(role))
            self.conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(role))
            self._mark_managed(self.conn, "ROLE", group)
            self.conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, role))
        with self.database(database) as dbconn, dbconn.transaction():
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

    def set_membership(self, member: str, group: str, grant: bool) -> None:
        from ecoctl.clients.postgres_roles import revoke_membership

        if not grant:
            return revoke_membership(self.conn, member, group)
        self.conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(member)))

    def drop_database(self, name: str) -> None:
        self.conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def drop_role(self, name: str) -> None:
        """Hand what the role owns to the admin and revoke its grants in every database it touched."""
        if not self.role_exists(name):
            return
        touched = [row[0] for row in self.conn.execute(
            "select distinct d.datname from pg_shdepend s join pg_database d on d.oid = s.dbid "
            "join pg_roles r on r.oid = s.refobjid and s.refclassid = 'pg_authid'::regclass "
            "where r.rolname = %s and d.datallowconn", (name,))]
        role = sql.Identifier(name)
        for database in sorted({ADMIN_DB, *touched}):
            with self.database(database) as dbconn, dbconn.transaction():
                dbconn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(role))
                dbconn.execute(sql.SQL("DROP OWNED BY {}").format(role))
        self.conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))
