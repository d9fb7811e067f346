"""Every failure a user can act on. The CLI prints each as one line on stderr and exits with
`exit_code`; anything else is a bug (printed as one line too, with ECOCTL_DEBUG for the traceback).

    EcoctlError                 1   a failure with a message that says what to do next
    ├── UsageError              2   bad input: a name, an option, a file the user wrote
    ├── Unreachable             1   a system ecoctl needs does not answer (down, starting, gone)
    ├── AuthentikError          1   Authentik answered, but not with what was asked
    │   ├── AuthentikNotFound       a 404
    │   ├── AuthentikTokenRejected  a 401/403: the API token is invalid or expired (not a rights problem)
    │   └── AuthentikValidation     a 400, with the fields it refused
    ├── NotConverged            1   asked to converge, but a system the ecosystem uses did not answer
    ├── ApplyFailed           1/2   applying a plan stopped at a failure (its cause's code); names what did not land
    ├── ChangeFailed          1/2   a provider applying changes side by side names the one that failed (its cause's code)
    ├── PostgresServerError     1   the local PostgreSQL could not be set up or started
    └── UnhealthyServices       1   services started but did not become healthy (with their last log lines)
"""

from __future__ import annotations

from typing import Any


class EcoctlError(Exception):
    """A failure with a one-line message that says what to do next."""

    exit_code = 1


class UsageError(EcoctlError):
    """Bad input: a name, an option, a file the user wrote."""

    exit_code = 2


class Unreachable(EcoctlError):
    """A system a provider talks to does not answer (not started yet, or down)."""


class AuthentikError(EcoctlError):
    """Authentik answered, but not with what was asked."""

    def __init__(self, message: str, status: int | None = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


class AuthentikNotFound(AuthentikError):
    pass


class AuthentikTokenRejected(AuthentikError):
    """Authentik does not know the API token (invalid or expired), as opposed to one without the rights."""


class AuthentikValidation(AuthentikError):
    """A 400: `fields` maps each field (or non_field_errors) to its messages."""

    @property
    def fields(self) -> dict[str, list[str]]:
        return self.body if isinstance(self.body, dict) else {}


class NotConverged(EcoctlError):
    """A command asked to converge could not reach a system the ecosystem uses: what it could do is
    done (and printed); `pending` maps each system to why. Exit 1, so `apply --yes && deploy` stops."""

    def __init__(self, pending: dict[str, str]):
        self.pending = dict(pending)
        reasons = "; ".join(f"{system}: {' '.join(reason.split())}" for system, reason in pending.items())
        super().__init__(f"not converged: {', '.join(pending)} did not answer ({reasons})")


class ApplyFailed(EcoctlError):
    """Applying a plan stopped at `cause`: `not_applied` holds the changes (`plan.Change`) that did
    not land, the failed one first, `applied` counts those that did. Said as the cause's message
    with both, and exits as the cause does."""

    def __init__(self, cause: EcoctlError, not_applied: list[Any], applied: int):
        self.cause, self.not_applied, self.applied = cause, list(not_applied), applied
        self.exit_code = cause.exit_code
        if not not_applied:
            super().__init__(str(cause))
            return
        first = not_applied[0]
        more = f" and {len(not_applied) - 1} more" if len(not_applied) > 1 else ""
        super().__init__(f"{cause} (not applied: {first.action} {first.kind} {first.name}{more}; {applied} applied)")


class ChangeFailed(EcoctlError):
    """`cause`, raised while applying `change` (a `plan.Change`) by a provider that applies several
    changes at once, so `apply_plan` can name that change first among those not applied. Said as
    the cause, and exits as the cause does."""

    def __init__(self, change: Any, cause: EcoctlError):
        self.change, self.cause = change, cause
        self.exit_code = cause.exit_code
        super().__init__(str(cause))


class PostgresServerError(EcoctlError):
    """PostgreSQL could not be installed, initialized or started."""


class UnhealthyServices(EcoctlError):
    def __init__(self, failures: dict[str, str], logs: dict[str, list[str]]):
        self.failures, self.logs = failures, logs
        names = ", ".join(f"{name} ({health})" for name, health in failures.items())
        super().__init__(f"not healthy: {names}: see `ecoctl logs SERVICE`; the rest of the stack stays up")
