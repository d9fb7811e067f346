"""Talking to PostgreSQL as the admin: connecting (with one-line errors), SCRAM verifiers, rotation.

Passwords reach the server only as SCRAM-SHA-256 verifiers computed here, so a server that logs
statements never records a plaintext. Only imported by commands that talk to PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from ecoctl.errors import EcoctlError, Unreachable, UsageError
from ecoctl.names import db_password_key, env_prefix, role_name
from ecoctl.providers.postgres import AUTHENTIK

if TYPE_CHECKING:
    from ecoctl.workspace import PostgresEndpoint, Workspace

def shared_write_refused(service: str, target: str) -> UsageError:
    """The seed's rule, for a request to let SERVICE write TARGET's database (`reads:` is the only grant)."""
    return UsageError(f"{service} may not write {target}'s database: cross-service writes go through "
                      f"{target}'s API, not direct database access; use `reads: [{target}]` for read access")


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


def check_admin(conn: psycopg.Connection, endpoint: "PostgresEndpoint") -> bool:
    """Raise unless the admin may create roles and databases; returns whether it is a superuser."""
    row = conn.execute("select rolsuper, rolcreaterole, rolcreatedb from pg_roles "
                       "where rolname = current_user").fetchone()
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


def service_role(workspace: "Workspace", service: str) -> str:
    if service == AUTHENTIK:
        if workspace.ecosystem.core.authentik.url is not None:
            raise EcoctlError("Authentik is external here (core.authentik.url): its database "
                              "password is not managed by ecoctl")
        return role_name(AUTHENTIK)
    if service not in workspace.ecosystem.services:
        raise EcoctlError(f"no service {service!r} in {workspace.ecosystem_file.path}: "
                          "run `ecoctl status` to list services")
    return role_name(service)


def rotate_password(workspace: "Workspace", service: str) -> None:
    """A new password for SERVICE's role: on the server and in .env, or in neither.

    The ALTER ROLE runs in a transaction that commits only after .env is saved; if saving fails
    the server keeps the old password, and if the commit fails .env gets the old one back.
    """
    from ecoctl.envfile import new_secret

    role = service_role(workspace, service)
    key = db_password_key(service)
    env = workspace.env
    old = env.get(key)
    new = new_secret()
    endpoint = workspace.postgres
    conn = connect(endpoint, autocommit=False)
    try:
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
        if not exists:
            raise EcoctlError(f"role {role} does not exist on {endpoint.address}: run `ecoctl apply` "
                              "to create it")
        set_role_password(conn, role, new)
        env.set(key, new, replace=True)
        try:
            env.save()
        except BaseException:
            conn.rollback()
            _restore(env, key, old)
            raise
        try:
            conn.commit()
        except BaseException:
            _restore(env, key, old)
            env.save()
            raise
    except psycopg.OperationalError as exc:
        raise connection_error(endpoint, "postgres", exc) from None
    except psycopg.Error as exc:
        message = exc.diag.message_primary or str(exc).splitlines()[0]
        raise EcoctlError(f"PostgreSQL at {endpoint.address} refused the new password for {role}: "
                          f"{message}: the old password still works; fix the cause and retry") from None
    finally:
        conn.close()


def _restore(env, key: str, old: str | None) -> None:
    if old is None:
        env.remove(key)
    else:
        env.set(key, old, replace=True)
