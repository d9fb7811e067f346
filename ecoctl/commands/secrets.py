"""`ecoctl secrets rotate SERVICE`: a new database password, on the server and in .env, or in neither."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecoctl.contract import AUTHENTIK_DATABASE, db_password_key
from ecoctl.errors import EcoctlError
from ecoctl.names import role_name

if TYPE_CHECKING:
    from ecoctl.workspace import Workspace


def service_role(workspace: "Workspace", service: str) -> str:
    if service == AUTHENTIK_DATABASE:
        if not workspace.ecosystem.authentik_in_stack:
            raise EcoctlError("Authentik is external here (core.authentik.url): its database "
                              "password is not managed by ecoctl")
        return role_name(AUTHENTIK_DATABASE)
    if service not in workspace.ecosystem.services:
        raise EcoctlError(f"no service {service!r} in {workspace.ecosystem_file.path}: "
                          "run `ecoctl status` to list services")
    return role_name(service)


def consumers(workspace: "Workspace", service: str) -> list[str]:
    """What reads SERVICE's database password and must restart to use a new one."""
    ecosystem = workspace.ecosystem
    if service == AUTHENTIK_DATABASE:
        from ecoctl.commands.restart import AUTHENTIK_CONTAINERS

        return list(AUTHENTIK_CONTAINERS) if ecosystem.runtime == "docker" else []
    spec = ecosystem.services.get(service)
    return [service] if spec is not None and spec.pattern != "external" else []


def rotate_password(workspace: "Workspace", service: str) -> None:
    """A new password for SERVICE's role: on the server and in .env, or in neither.

    The ALTER ROLE runs in a transaction that commits only after .env is saved; if saving fails
    the server keeps the old password, and if the commit fails .env gets the old one back.
    """
    import psycopg

    from ecoctl.clients.postgres import connect, session_error, set_role_password
    from ecoctl.support.envfile import new_secret

    role = service_role(workspace, service)
    key = db_password_key(service)
    old = workspace.env.get(key)
    new = new_secret()
    endpoint = workspace.postgres
    conn = connect(endpoint, autocommit=False)
    try:
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
        if not exists:
            raise EcoctlError(f"role {role} does not exist on {endpoint.address}: run `ecoctl apply` "
                              "to create it")
        set_role_password(conn, role, new)
        try:
            workspace.record({key: new})
        except BaseException:
            conn.rollback()
            raise
        try:
            conn.commit()
        except BaseException:
            workspace.record({key: old})
            raise
    except psycopg.Error as exc:
        raise session_error(endpoint, f"setting a new password for {role} (the old one still works)",
                            exc) from None
    finally:
        conn.close()
