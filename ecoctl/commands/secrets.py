"""`ecoctl secrets rotate SERVICE`: a new database password, on the server and in .env, or in neither."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ecoctl.contract import AUTHENTIK_DATABASE, db_password_key
from ecoctl.errors import EcoctlError, UsageError
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
    if not workspace.ecosystem.services[service].has_database:
        raise UsageError(f"{service} is a web app: it has no database, so no database password")
    return role_name(service)


def consumers(workspace: "Workspace", runtime, service: str) -> list[str]:
    """What reads SERVICE's database password (the core components RUNTIME runs that declare
    the key, and the service itself) and must restart to use a new one."""
    key = db_password_key(service)
    names = [component.name for component in runtime.components() if key in component.secrets]
    spec = workspace.ecosystem.services.get(service)
    return names + ([service] if spec is not None and spec.pattern != "external" else [])


@dataclass
class Rotation:
    service: str
    consumers: list[str]
    health: dict[str, str] | None
    """Each consumer's health after it was restarted; None when the stack does not run."""
    done: str
    """How the runtime says it restarted them ({}: names and health)."""

    @property
    def failed(self) -> dict[str, str]:
        return {name: state for name, state in (self.health or {}).items() if state not in ("healthy", "restarted")}

    def lines(self) -> list[str]:
        lines = [f"Rotated {self.service}'s database password (.env updated)."]
        if not self.consumers:
            return lines
        if self.health is None:
            return lines + [f"The stack is not running: {', '.join(self.consumers)} will use the new "
                            "password at the next `ecoctl up`."]
        return lines + [self.done.format(", ".join(f"{name} ({state})" for name, state in self.health.items()))]


def rotate(workspace: "Workspace", service: str, progress=None) -> Rotation:
    """`ecoctl secrets rotate SERVICE`: a new password, then what reads it restarted with it."""
    from ecoctl.runtimes import get_runtime

    rotate_password(workspace, service)
    if workspace.ecosystem.core.postgres.pooler:  # the pooler checks clients with the new verifier
        from ecoctl.commands.reconcile import runtime_view
        from ecoctl.providers.postgres import PostgresProvider
        from ecoctl.providers.postgres_scaling import SyncUserlist, sync_userlist

        provider = PostgresProvider(workspace, runtime=runtime_view(workspace))
        try:
            with provider.admin.errors("writing the pooler's userlist"):
                sync_userlist(provider, SyncUserlist(tuple(role_name(name) for name, spec in
                                                                 workspace.ecosystem.services.items() if spec.has_database)))
        finally:
            provider.close()
    runtime = get_runtime(workspace, progress)
    try:
        names = consumers(workspace, runtime, service)
        health = runtime.after_secret_rotated(names) if names else None
        return Rotation(service, names, health, runtime.rotation_done)
    finally:
        runtime.close()


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


def dev_password(workspace: "Workspace", user: str) -> str:
    """A development user's password (the local runtime's sign-in), from .env: printed only when asked."""
    from ecoctl.signin import password_key

    users = workspace.ecosystem.core.signin.users
    if user not in users:
        known = ", ".join(users) or "none yet"
        raise UsageError(f"{user!r} is not a development user (core.signin.users: {known}): add it there, "
                         "then run `ecoctl up`")
    return workspace.secret(password_key(user))
