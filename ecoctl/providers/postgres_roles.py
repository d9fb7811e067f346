"""The postgres provider's rules for objects it may not own yet, and for what its roles may hold.

- Ownership: a role or database with a service's name that ecoctl did not create (no `managed by
  ecoctl` comment) is a *conflict*: `plan` shows `! conflict role loyalty_user (...)` and `apply`
  refuses before it changes anything, with one line naming the object, unless `--adopt`
  (`Options.adopt`). Adopted, it is marked managed and reset to exactly what ecoctl grants.
- Exactly ecoctl's grants: a login role `<svc>_user` is LOGIN INHERIT, member of the read groups
  of its `reads` and nothing else, with no members but the admin (a member may `SET ROLE` to it);
  a read group `<svc>_readonly` is NOLOGIN, member of nothing, and has no members but its readers
  (and the admin). Neither carries settings (`ALTER ROLE ... SET search_path`: ecoctl sets none).
  Anything more is drift, shown as
  `~ update role loyalty_user (CREATEROLE, BYPASSRLS, member of pg_execute_server_program: removed)`
  and taken back by `apply`.
- `postgres`/`template1`: PUBLIC may connect there by default; revoking that would change roles
  ecoctl does not own, so it is left to the admin (`ecoctl doctor` warns and prints the statement).
"""

from __future__ import annotations

from dataclasses import dataclass

from ecoctl.clients.postgres_roles import ADMIN_DATABASES, extra_attributes, shown_settings
from ecoctl.plan import Change


@dataclass(frozen=True)
class StripRole:
    role: str
    clauses: tuple[str, ...]
    """ALTER ROLE clauses taking back attributes (NOCREATEROLE, INHERIT, ...)."""
    revoke: tuple[str, ...]
    """Roles it must no longer be a member of."""
    databases: tuple[str, ...] = ()
    """Admin databases (`postgres`, `template1`) where privileges were granted to the role itself."""
    admin_options: tuple[str, ...] = ()
    """Groups it stays a member of but may no longer grant to others."""
    reset_in: tuple[str, ...] = ()
    """Databases where its settings are reset ("": those for every database)."""


CONFLICT_DETAIL = "exists, not created by ecoctl: pass --adopt to take it over"


def conflict_message(kind: str, name: str) -> str:
    """Why apply refuses KIND ("role" or "database") NAME, which ecoctl did not create."""
    return (f"PostgreSQL {kind} {name} exists and was not created by ecoctl: run `ecoctl apply --adopt` "
            "to take it over (reset to exactly ecoctl's grants), or rename or drop it")


def unowned_roles(desired, actual) -> set[str]:
    """The roles with a managed name (a service's login role or read group, in DESIRED: a
    `postgres.Desired`) that exist in ACTUAL without ecoctl's mark."""
    return {name for name, role in actual.roles.items() if not role.managed
            and (name in desired.groups or name in desired.passwords)}


def strip(system: str, role, wanted_groups: set[str], login: bool, keep: set[str],
          service: str | None, databases: dict) -> list[Change]:
    """The change taking back from ROLE (a RoleState) what ecoctl does not grant: attributes beyond a
    login role's (LOGIN) or a group's, memberships outside WANTED_GROUPS (KEEP: handled elsewhere),
    privileges granted to it by name on `postgres`/`template1` (DATABASES: name -> DatabaseState),
    and its settings.
    What PUBLIC may do there is not the role's: `ecoctl doctor` reports it."""
    attributes = extra_attributes(role, login)
    revoke = sorted(role.member_of - wanted_groups - keep)
    granted = {name: sorted(databases[name].privileges[role.name]) for name in ADMIN_DATABASES
               if name in databases and databases[name].privileges.get(role.name)}
    admin_options = sorted(role.admin_of & wanted_groups)
    if not attributes and not revoke and not granted and not admin_options and not role.settings:
        return []
    shown = [text for text, _ in attributes]
    if revoke:
        shown.append(f"member of {', '.join(revoke)}")
    if admin_options:
        shown.append(f"ADMIN OPTION on {', '.join(admin_options)}")
    shown += [f"{' '.join(privileges)} on {name}" for name, privileges in granted.items()]
    shown += shown_settings(role.settings)
    return [Change(system, "update", "role", role.name, f"{', '.join(shown)}: removed", service=service,
                   payload=StripRole(role.name, tuple(clause for _, clause in attributes), tuple(revoke),
                                     tuple(granted), tuple(admin_options),
                                     tuple(sorted({database for database, _ in role.settings}))))]
