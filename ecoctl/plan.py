"""The reconcile core: providers read what exists, diff it against the desired state, and apply
one `Change` at a time. A plan is the concatenation of the providers' diffs, in dependency order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal

from ecoctl.errors import Unreachable

if TYPE_CHECKING:
    from ecoctl.workspace import Workspace

Action = Literal["create", "update", "delete"]
SYMBOLS = {"create": "+", "update": "~", "delete": "-"}


@dataclass(frozen=True)
class Change:
    """One step toward the desired state: prints as `+ create database loyalty_db`."""

    system: str
    action: Action
    kind: str
    name: str
    detail: str = ""
    """Why, in words: what differs, or what is kept (`database kept: pass --drop-data`)."""
    data: Any = field(default=None, compare=False, repr=False)
    """Whatever the provider needs to apply this change; never printed, never a secret."""

    def __str__(self) -> str:
        text = f"{SYMBOLS[self.action]} {self.action} {self.kind} {self.name}"
        return f"{text} ({self.detail})" if self.detail else text

    def to_json(self) -> dict:
        return {"system": self.system, "action": self.action, "kind": self.kind, "name": self.name,
                "detail": self.detail, "text": str(self)}


class Provider(ABC):
    """One external system. Subclasses set `name` and implement read / desired / diff / apply."""

    name: ClassVar[str]

    def __init__(self, workspace: "Workspace"):
        self.workspace = workspace

    @abstractmethod
    def read(self) -> Any:
        """What exists now, for all services at once (raise `Unreachable` when the system is down)."""

    @abstractmethod
    def desired(self) -> Any:
        """What should exist, from ecosystem.yaml (and .env)."""

    @abstractmethod
    def diff(self, desired: Any, actual: Any) -> list[Change]:
        """The changes, in the order they must be applied."""

    @abstractmethod
    def apply(self, change: Change) -> None:
        """Make exactly this change, idempotently."""

    def plan(self) -> list[Change]:
        return self.diff(self.desired(), self.read())

    def close(self) -> None:
        """Release connections; called once after planning/applying."""


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)
    """Providers whose system did not answer, with the reason (their changes are not known yet)."""

    @property
    def empty(self) -> bool:
        return not self.changes and not self.pending

    def to_json(self) -> dict:
        return {"changes": [change.to_json() for change in self.changes],
                "pending": pending_json(self.pending)}


def pending_json(pending: dict[str, str]) -> list[dict]:
    """Systems that did not answer (or were not asked), as JSON for CI."""
    return [{"system": name, "reason": reason} for name, reason in pending.items()]


def make_plan(providers: list[Provider]) -> Plan:
    plan = Plan()
    for provider in providers:
        try:
            plan.changes.extend(provider.plan())
        except Unreachable as exc:
            plan.pending[provider.name] = str(exc)
    return plan


def apply_plan(providers: list[Provider], on_change: Callable[[Change], None] | None = None) -> Plan:
    """Plan and apply provider by provider, in the given (dependency) order.

    Each provider is diffed just before it applies, so it sees what earlier providers did
    (e.g. secrets the postgres provider wrote to .env). Returns what was done and what is pending.
    """
    done = Plan()
    for provider in providers:
        try:
            changes = provider.plan()
        except Unreachable as exc:
            done.pending[provider.name] = str(exc)
            continue
        for change in changes:
            provider.apply(change)
            done.changes.append(change)
            if on_change:
                on_change(change)
    return done
