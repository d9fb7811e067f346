"""The statements of a restore, as the admin: a new database made like the live one, the check of
what was restored, and the swap (the live database renamed aside, the restored one renamed into
its place, in one transaction). The live database is never written to: until the swap commits it
is exactly as it was, and after it, it is kept under another name until the caller drops it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from psycopg import errors, sql

if TYPE_CHECKING:
    import psycopg

MAX_NAME = 63
"""PostgreSQL's identifier length (NAMEDATALEN - 1)."""


def exists(conn: "psycopg.Connection", database: str) -> bool:
    return conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone() is not None


def create_like(conn: "psycopg.Connection", new: str, owner: str, like: str | None, comment: str) -> None:
    """NEW: empty (from template0), owned by OWNER, with LIKE's encoding and its grants (who may
    connect), or only its owner's when there is no LIKE; marked with COMMENT."""
    name = sql.Identifier(new)
    encoding = None
    if like is not None:
        encoding = conn.execute("select pg_encoding_to_char(encoding) from pg_database where datname = %s",
                                (like,)).fetchone()
    clause = sql.SQL(" ENCODING {}").format(sql.Literal(encoding[0])) if encoding else sql.SQL("")
    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0{}").format(
        name, sql.Identifier(owner), clause))
    grants = [] if like is None else conn.execute(
        "select case when a.grantee = 0 then null else pg_get_userbyid(a.grantee) end, a.privilege_type "
        "from pg_database d, aclexplode(d.datacl) a where d.datname = %s and a.grantee <> d.datdba "
        "order by 1, 2", (like,)).fetchall()
    with conn.transaction():
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(name, sql.Literal(comment)))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
        conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(name, sql.Identifier(owner)))
        for grantee, privilege in grants:
            conn.execute(sql.SQL("GRANT {} ON DATABASE {} TO {}").format(
                sql.SQL(privilege), name, sql.Identifier(grantee) if grantee else sql.SQL("PUBLIC")))


def missing_tables(conn: "psycopg.Connection", tables: list[str]) -> list[str]:
    """The TABLES (schema.table) that CONN's database does not have."""
    missing = []
    for table in tables:
        schema, _, name = table.partition(".")
        found = conn.execute("select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                             "where n.nspname = %s and c.relname = %s", (schema, name)).fetchone()
        if found is None:
            missing.append(table)
    return missing


def terminate(conn: "psycopg.Connection", database: str) -> None:
    """End every session on DATABASE (waiting up to 5 s for each to go, since PostgreSQL 14)."""
    wait = sql.SQL(", 5000" if conn.info.server_version >= 140000 else "")
    conn.execute(sql.SQL("select pg_terminate_backend(pid{}) from pg_stat_activity "
                         "where datname = %s and pid <> pg_backend_pid()").format(wait), (database,))


def allow_connections(conn: "psycopg.Connection", database: str, allow: bool) -> None:
    conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
        sql.Identifier(database), sql.SQL("true" if allow else "false")))


def connections_allowed(conn: "psycopg.Connection", database: str) -> bool:
    row = conn.execute("select datallowconn from pg_database where datname = %s", (database,)).fetchone()
    return bool(row and row[0])


def swap(conn: "psycopg.Connection", live: str, new: str, aside: str, comment: str | None,
         attempts: int = 20) -> None:
    """LIVE renamed to ASIDE and NEW to LIVE (marked with COMMENT), at once, right after LIVE's
    sessions are ended. When clients keep reconnecting in between, new connections to LIVE are
    refused for the last attempts (`restore` re-allows them if it was killed then). On any failure
    LIVE is as it was, connections allowed again."""
    had_live = exists(conn, live)
    closed = False
    try:
        for attempt in range(attempts):
            if had_live and not closed and attempt >= 3:
                allow_connections(conn, live, False)
                closed = True
            for database in (live, new) if had_live else (new,):
                terminate(conn, database)
            try:
                with conn.transaction():
                    if had_live:
                        conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                            sql.Identifier(live), sql.Identifier(aside)))
                    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(new), sql.Identifier(live)))
                    if comment is not None:
                        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                            sql.Identifier(live), sql.Literal(comment)))
                break
            except errors.ObjectInUse:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.1 * attempt)
    except BaseException:
        if closed and exists(conn, live):
            allow_connections(conn, live, True)
        raise
    if closed:
        allow_connections(conn, aside, True)


def drop(conn: "psycopg.Connection", database: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
