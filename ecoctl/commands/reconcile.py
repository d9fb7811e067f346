"""`ecoctl plan / apply`: plan once over a workspace's providers, then apply exactly that plan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

from ecoctl.contract import secret_keys
from ecoctl.errors import NotConverged, UsageError
from ecoctl.plan import Change, Options, Plan, RuntimeView, apply_plan, make_plan
from ecoctl.providers import SYSTEMS, load_providers, systems_used

if TYPE_CHECKING:
    from ecoctl.runtimes.base import Runtime
    from ecoctl.workspace import Workspace


def parse_only(values: Iterable[str] | None) -> frozenset[str] | None:
    """`--only files,compose --only postgres` -> the systems named; None when none was named."""
    names = [name.strip() for value in values or () for name in value.split(",") if name.strip()]
    if not names:
        return None
    unknown = sorted(set(names) - set(SYSTEMS))
    if unknown:
        raise UsageError(f"--only {unknown[0]}: not a system; use one of {', '.join(SYSTEMS)}")
    return frozenset(names)


def runtime_view(workspace: "Workspace", runtime: "Runtime | None" = None) -> RuntimeView:
    """The ecosystem's runtime as its providers see it: where the stack runs, and how its
    Prometheus reloads (RUNTIME, the command's own, else one made only when a reload is asked for)."""
    made: list["Runtime"] = [runtime] if runtime is not None else []

    def the_runtime() -> "Runtime":
        if not made:
            from ecoctl.runtimes import get_runtime

            made.append(get_runtime(workspace))
        return made[0]

    return RuntimeView(workspace.ecosystem.in_containers, lambda: the_runtime().reload_prometheus(),
                       lambda name: the_runtime().reload_component(name))


class Reconciliation:
    """One plan over the systems an ecosystem uses (or `only` those), and its apply.

    Secrets the desired state needs are generated (once) before anything is read, so the plan
    shown is the plan applied. Use as a context manager: connections close at the end.
    """

    def __init__(self, workspace: "Workspace", only: Iterable[str] | None = None,
                 options: Options = Options(), runtime: "Runtime | None" = None):
        used = systems_used(workspace.ecosystem)
        self.workspace = workspace
        self.systems = used & set(only) if only is not None else used
        asked = set(only) if only is not None else set(SYSTEMS)
        self.not_used = tuple(system for system in SYSTEMS if system in asked - used)
        workspace.ensure_secrets(secret_keys(workspace.ecosystem))
        self.providers = load_providers(workspace, self.systems, options, runtime_view(workspace, runtime))
        self.plan: Plan | None = None

    def make_plan(self) -> Plan:
        self.plan = make_plan(self.providers)
        self.plan.not_used = self.not_used
        return self.plan

    def apply(self, on_change: Callable[[Change], None] | None = None) -> Plan:
        from ecoctl import certs

        plan = self.plan if self.plan is not None else self.make_plan()
        certs.ensure(self.workspace.state_dir, self.workspace.ecosystem)  # created once, renewed before expiry
        return apply_plan(self.providers, plan, on_change)

    def close(self) -> None:
        """Every provider closed (a connection, a background check), even when one of them fails."""
        failure = None
        for provider in self.providers:
            try:
                provider.close()
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def __enter__(self) -> "Reconciliation":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unreachable(pending: dict[str, str]) -> dict[str, str]:
    """The systems among `pending` that did not answer (not the runtime, not what --no-apply skipped)."""
    return {system: reason for system, reason in pending.items() if system in SYSTEMS}


def require_converged(pending: dict[str, str]) -> None:
    """For a command asked to converge: raise `NotConverged` (exit 1, systems named on stderr) when a
    system the ecosystem uses did not answer. Call it after the result was printed."""
    missing = unreachable(pending)
    if missing:
        raise NotConverged(missing)


def plan_workspace(workspace: "Workspace", only: Iterable[str] | None = None,
                   options: Options = Options()) -> Plan:
    with Reconciliation(workspace, only, options) as reconciliation:
        return reconciliation.make_plan()


def converge(workspace: "Workspace", only: Iterable[str] | None = None, options: Options = Options(),
             on_change: Callable[[Change], None] | None = None, runtime: "Runtime | None" = None) -> Plan:
    """Plan and apply in one go (for commands that converge as one of their steps; RUNTIME: the
    command's, when it has made one)."""
    with Reconciliation(workspace, only, options, runtime) as reconciliation:
        return reconciliation.apply(on_change)
