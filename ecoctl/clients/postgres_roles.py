"""Statements that take back from a managed role what ecoctl did not grant it, and the read of what
PUBLIC may do in the admin databases (for `ecoctl doctor`).

A service's login role gets LOGIN INHERIT and the read groups of its `reads`, nothing else; a
read group gets NOLOGIN and no membership. Anything more (SUPERUSER, CREATEROLE, CREATEDB,
REPLICATION, BYPASSRLS, NOINHERIT, a connection limit, a password expiry, membership in
`pg_execute_server_program` or in another service's role, a setting such as `search_path`) is
stripped by `strip_role`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

# RoleState field -> (what plan calls it, the ALTER ROLE clause that takes it back)
FLAGS = (("superuser", "SUPERUSER", "NOSUPERUSER"), ("createrole", "CREATEROLE", "NOCREATEROLE"),
         ("createdb", "CREATEDB", "NOCREATEDB"), ("replication", "REPLICATION", "NOREPLICATION"),
         ("bypassrls", "BYPASSRLS", "NOBYPASSRLS"))
RESET_CLAUSES = {"NOINHERIT": "INHERIT", "CONNECTION LIMIT": "CONNECTION LIMIT -1",
                 "VALID UNTIL": "VALID UNTIL 'infinity'"}
ADMIN_DATABASES = ("postgres", "template1")


def extra_attributes(role, login: bool) -> list[tuple[str, str]]:
    """(shown, clause) for each attribute ROLE has beyond a login role's (LOGIN) or a group's."""
    extras = [(shown, clause) for field, shown, clause in FLAGS if getattr(role, field)]
    if login:
        if not role.inherit:
            extras.append(("NOINHERIT", RESET_CLAUSES["NOINHERIT"]))
        if role.connlimit != -1:
            extras.append((f"CONNECTION LIMIT {role.connlimit}", RESET_CLAUSES["CONNECTION LIMIT"]))
        if role.valid_until:
            extras.append((f"VALID UNTIL {role.valid_until}", RESET_CLAUSES["VALID UNTIL"]))
    return extras


SETTINGS_SQL = """
select r.rolname, coalesce(d.datname, ''), unnest(s.setconfig)
from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
left join pg_database d on d.oid = s.setdatabase
where s.setrole <> 0 and r.rolname !~ '^pg_'
"""


def role_settings(conn: "psycopg.Connection") -> dict[str, frozenset[tuple[str, str]]]:
    """Role -> its settings: (database, "name=value"), database "" for every database."""
    settings: dict[str, set[tuple[str, str]]] = {}
    for role, database, setting in conn.execute(SETTINGS_SQL):
        settings.setdefault(role, set()).add((database, setting))
    return {role: frozenset(pairs) for role, pairs in settings.items()}


def shown_settings(settings) -> list[str]:
    """How plan names SETTINGS (see `role_settings`): `setting search_path=evil [in loyalty_db]`."""
    return [f"setting {setting}" + (f" in {database}" if database else "")
            for database, setting in sorted(settings, key=lambda pair: (pair[0] != "", pair))]


def revoke_membership(conn: "psycopg.Connection", member: str, group: str, admin_option_only: bool = False) -> None:
    """MEMBER is no longer in GROUP (or only may no longer grant it). Since PostgreSQL 16 a membership
    is one grant per grantor and a plain REVOKE takes back only the current user's: each grantor's
    is revoked by name."""
    from psycopg import sql

    statement = sql.SQL("REVOKE {}{} FROM {}").format(
        sql.SQL("ADMIN OPTION FOR " if admin_option_only else ""), sql.Identifier(group), sql.Identifier(member))
    if conn.info.server_version < 160000:
        conn.execute(statement)
        return
    grantors = [row[0] for row in conn.execute(
        "select pg_get_userbyid(m.grantor) from pg_auth_members m "
        "where m.member = %s::regrole and m.roleid = %s::regrole", (member, group))]
    for grantor in grantors:
        conn.execute(statement + sql.SQL(" GRANTED BY {}").format(sql.Identifier(grantor)))


def strip_role(conn: "psycopg.Connection", role: str, clauses: tuple[str, ...], revoke: tuple[str, ...],
               databases: tuple[str, ...] = (), admin_options: tuple[str, ...] = (),
               reset_in: tuple[str, ...] = ()) -> None:
    """ALTER ROLE ROLE with CLAUSES (from FLAGS / RESET_CLAUSES only), take ROLE out of REVOKE, revoke
    what was granted to ROLE itself on DATABASES (`postgres`, `template1`), its ADMIN OPTION on
    ADMIN_OPTIONS (groups it stays in), and reset its settings in RESET_IN ("" = every database)."""
    from psycopg import sql

    known = {clause for _, _, clause in FLAGS} | set(RESET_CLAUSES.values())
    unknown = set(clauses) - known
    if unknown:
        raise ValueError(f"not a clause strip_role knows: {sorted(unknown)}")
    with conn.transaction():
        if clauses:
            conn.execute(sql.SQL("ALTER ROLE {} " + " ".join(clauses)).format(sql.Identifier(role)))
        for group in revoke:
            exists = conn.execute("select 1 from pg_roles where rolname = %s", (group,)).fetchone()
            if exists:
                revoke_membership(conn, role, group)
        for group in admin_options:
            revoke_membership(conn, role, group, admin_option_only=True)
        for database in databases:
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(
                sql.Identifier(database), sql.Identifier(role)))
        for database in reset_in:
            where = sql.SQL(" IN DATABASE {}").format(sql.Identifier(database)) if database else sql.SQL("")
            conn.execute(sql.SQL("ALTER ROLE {}{} RESET ALL").format(sql.Identifier(role), where))


def public_access(conn: "psycopg.Connection") -> dict[str, list[str]]:
    """What PUBLIC may do in `postgres` and `template1` (CONNECT, TEMPORARY): database -> privileges."""
    rows = conn.execute(
        "select d.datname, a.privilege_type from pg_database d, "
        "aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a "
        "where d.datname = any(%s) and a.grantee = 0 and a.privilege_type in ('CONNECT', 'TEMPORARY') "
        "order by 1, 2", (list(ADMIN_DATABASES),)).fetchall()
    access: dict[str, list[str]] = {}
    for database, privilege in rows:
        access.setdefault(database, []).append(privilege)
    return access
