"""The reconcile core: providers read what exists, diff it against the desired state, and apply
one `Change` at a time. A plan is the concatenation of the providers' diffs, in apply order, and
`apply` runs exactly the plan that was made (and shown): each system is read once, diffed once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, Mapping

from ecoctl.errors import ApplyFailed, ChangeFailed, EcoctlError, Unreachable

if TYPE_CHECKING:
    from ecoctl.workspace import Workspace

Action = Literal["create", "update", "delete", "conflict"]
SYMBOLS = {"create": "+", "update": "~", "delete": "-", "conflict": "!"}
"""A "conflict" is an object ecoctl would have to take over (it did not create it): its payload's
applier refuses with one line, and `apply_plan` runs those first, so nothing is applied."""


@dataclass(frozen=True)
class Change:
    """One step toward the desired state: prints as `+ create database loyalty_db`."""

    system: str
    action: Action
    kind: str
    name: str
    detail: str = ""
    """Why, in words: what differs, or what is kept (`database kept: pass --drop-data`)."""
    service: str | None = None
    """The service this change is for (None: the ecosystem as a whole)."""
    payload: Any = field(default=None, compare=False, repr=False)
    """The provider's typed description of the change (a dataclass per kind); never a secret."""

    def __str__(self) -> str:
        text = f"{SYMBOLS[self.action]} {self.action} {self.kind} {self.name}"
        return f"{text} ({self.detail})" if self.detail else text

    def to_json(self) -> dict:
        return {"system": self.system, "action": self.action, "kind": self.kind, "name": self.name,
                "service": self.service, "detail": self.detail, "text": str(self)}


@dataclass(frozen=True)
class Options:
    """What a command asks of the providers beyond ecosystem.yaml (each provider reads its own)."""

    drop_data: frozenset[str] = frozenset()
    """postgres: services whose database is deleted when they are removed (`--drop-data`)."""
    reload: bool = True
    """prometheus: reload a running Prometheus after writing prometheus.yml."""
    adopt: bool = False
    """Take over objects with a managed name that this ecosystem did not create (`--adopt`): PostgreSQL
    roles and databases (reset to exactly ecoctl's grants), Authentik providers and applications;
    without it they are a conflict: shown by `plan`, refused by `apply` before anything is written."""


@dataclass(frozen=True)
class RuntimeView:
    """What the providers need of the runtime, handed in by the command that made them: a provider
    never asks which runtime it is."""

    in_containers: bool = False
    """The stack runs in containers on one network (docker, swarm): Prometheus reaches each service
    by its name and itself at its container port. False: every piece runs on this host."""
    reload_prometheus: Callable[[], bool] | None = None
    """Make a running Prometheus read prometheus.yml again and check it did (False when none
    answers); None: nothing is reloaded."""
    reload_component: Callable[[str], bool] | None = None
    """Make the named running core component read its files again (the pooler its userlist; False
    when it does not run); None: nothing is reloaded."""


@dataclass(frozen=True)
class Conflict:
    """The payload of a change ecoctl refuses to make: an object with a managed name that this
    ecosystem does not own. `apply_plan` raises `message` (one line) before applying anything."""

    message: str


Applier = Callable[[Any, Any], None]
"""A provider's method applying one payload type: `applier(provider, payload)`."""


class Provider(ABC):
    """One external system. Subclasses set `name`, implement read / desired / diff (a pure function
    of its arguments), and map each payload type to the method that applies it in `appliers`."""

    name: ClassVar[str]
    appliers: ClassVar[Mapping[type, Applier]] = {}
    """Payload type -> the method (the function itself) that applies a change carrying it."""

    def __init__(self, workspace: "Workspace", options: Options = Options(), runtime: RuntimeView | None = None):
        """RUNTIME defaults to what the ecosystem model says, with nothing to reload Prometheus."""
        self.workspace = workspace
        self.options = options
        self.runtime = runtime if runtime is not None else RuntimeView(workspace.ecosystem.in_containers)

    @abstractmethod
    def read(self) -> Any:
        """What exists now, for all services at once (raise `Unreachable` when the system is down)."""

    @abstractmethod
    def desired(self) -> Any:
        """What should exist, from ecosystem.yaml (and .env)."""

    @abstractmethod
    def diff(self, desired: Any, actual: Any) -> list[Change]:
        """The changes, in the order they must be applied."""

    def notices(self, desired: Any, actual: Any) -> list[str]:
        """Worth saying with the plan but not a change, e.g. a service behind its template (`ecoctl
        upgrade` does that). Default: none."""
        return []

    def conflict(self, kind: str, name: str, detail: str, message: str, service: str | None) -> Change:
        """The change standing for KIND NAME, which ecoctl would have to take over: `plan` shows it
        with DETAIL, `apply_plan` refuses the whole plan with MESSAGE (one line)."""
        return Change(self.name, "conflict", kind, name, detail, service=service, payload=Conflict(message))

    def apply(self, change: Change) -> None:
        """Make exactly this change, idempotently (a conflict is refused: its message is raised)."""
        if isinstance(change.payload, Conflict):
            raise EcoctlError(change.payload.message)
        applier = self.appliers.get(type(change.payload))
        if applier is None:
            raise TypeError(f"{self.name} provider cannot apply {change} ({type(change.payload).__name__})")
        applier(self, change.payload)

    def prepare(self, changes: list[Change]) -> None:
        """Called by `apply_plan` with this system's run of changes before any change of the plan
        is applied, for work that changes nothing but takes time (a check in a child process), so
        it overlaps the other systems' applies. Default: nothing. It must not raise (`apply_all`
        reports any problem in its turn); `apply_all` must not trust what was prepared from a
        state that changed since; `close()` stops whatever still runs."""

    def apply_all(self, changes: list[Change], on_change: Callable[[Change], None]) -> None:
        """Apply these changes of this system (in plan order), calling `on_change(change)` once each
        has landed. Default: one by one. A provider editing a file overrides it to make every edit in
        memory and write once; it calls `on_change` only after the write carrying the change succeeded.
        A provider applying changes side by side calls `on_change` from the calling thread and raises
        `ChangeFailed` naming the change that failed."""
        for change in changes:
            self.apply(change)
            on_change(change)

    def plan(self) -> list[Change]:
        return self.diff(self.desired(), self.read())

    def close(self) -> None:
        """Release connections; called once after planning/applying."""


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)
    """Systems that did not answer, with the reason (their changes are not known yet)."""
    notices: list[str] = field(default_factory=list)
    """Worth knowing, but not a change: e.g. a service behind its template (`ecoctl upgrade`)."""
    not_used: tuple[str, ...] = ()
    """Systems this ecosystem does not use (Authentik under the local runtime): never pending."""

    @property
    def empty(self) -> bool:
        return not self.changes and not self.pending

    def for_service(self, service: str) -> list[Change]:
        return [change for change in self.changes if change.service == service]

    def to_json(self) -> dict:
        return {"changes": [change.to_json() for change in self.changes],
                "pending": pending_json(self.pending), "not_used": list(self.not_used),
                "notices": list(self.notices)}


def pending_json(pending: dict[str, str]) -> list[dict]:
    """Systems that did not answer (or were not asked), as JSON for CI."""
    return [{"system": name, "reason": reason} for name, reason in pending.items()]


def make_plan(providers: list[Provider]) -> Plan:
    """Every provider's diff, in order. The systems are read side by side (each waits on its own
    server: PostgreSQL, Prometheus, Authentik), then diffed one by one; a read's failure is met in
    the providers' order, as if they had been read one after the other."""
    plan = Plan()
    for provider, (actual, failure) in zip(providers, _read_all(providers)):
        try:
            desired = provider.desired()
            if failure is not None:
                raise failure
            plan.changes.extend(provider.diff(desired, actual))
            plan.notices.extend(provider.notices(desired, actual))
        except Unreachable as exc:
            plan.pending[provider.name] = str(exc)
    return plan


def _read_all(providers: list[Provider]) -> list[tuple[Any, Exception | None]]:
    """(what each provider read, or the exception its read raised), read in threads."""
    def read(provider: Provider) -> tuple[Any, Exception | None]:
        try:
            return provider.read(), None
        except Exception as exc:
            return None, exc

    if len(providers) < 2:
        return [read(provider) for provider in providers]
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=len(providers), thread_name_prefix="ecoctl-read")
    try:
        return list(pool.map(read, providers))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # all done, unless interrupted (Ctrl-C)


def apply_plan(providers: list[Provider], plan: Plan,
               on_change: Callable[[Change], None] | None = None) -> Plan:
    """Apply exactly `plan`'s changes in plan order, each system's run of changes by its provider's
    `apply_all`, after every run was handed to its provider's `prepare`. Returns what was done and
    what stays pending (its changes in plan order, however a provider interleaved them; `on_change`
    hears each as it lands). A failure is raised as `ApplyFailed`, which names the changes that did
    not land."""
    from itertools import groupby

    conflicts = [change for change in plan.changes if isinstance(change.payload, Conflict)]
    if conflicts:  # refused before anything is written
        more = f" (and {len(conflicts) - 1} more conflict(s): see `ecoctl plan`)" if len(conflicts) > 1 else ""
        raise EcoctlError(conflicts[0].payload.message + more)
    by_system = {provider.name: provider for provider in providers}
    done = Plan(pending=dict(plan.pending), not_used=plan.not_used)
    landed: set[int] = set()

    def record(change: Change) -> None:
        landed.add(id(change))
        done.changes.append(change)
        if on_change:
            on_change(change)

    runs = [(by_system[system], list(run))
            for system, run in groupby(plan.changes, key=lambda change: change.system)]
    try:
        for provider, changes in runs:
            provider.prepare(changes)
        for provider, changes in runs:
            provider.apply_all(changes, record)
    except EcoctlError as exc:
        cause, failed = (exc.cause, exc.change) if isinstance(exc, ChangeFailed) else (exc, None)
        missing = [change for change in plan.changes if id(change) not in landed]
        missing.sort(key=lambda change: change is not failed)  # the failed one first
        raise ApplyFailed(cause, missing, len(done.changes)) from cause
    done.changes = [change for change in plan.changes if id(change) in landed]
    return done
