"""Terminal output: plans, results and errors for a person (rich), or one JSON object for CI."""

from __future__ import annotations

import json
import sys
from typing import Any

from ecoctl.support.plain_console import PlainConsole, escape, plain_possible

STYLES = {"create": "green", "update": "yellow", "delete": "red", "conflict": "bold red"}


def console(stderr: bool = False):
    """A rich Console; off a terminal, a PlainConsole printing what it would print, without rich."""
    if plain_possible(sys.stderr if stderr else sys.stdout):
        return PlainConsole(stderr, lambda: rich_console(stderr))
    return rich_console(stderr)


def rich_console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # a pipe or CI log gets full-width tables instead of rich's 80-column default
    width = None if stream.isatty() else 160
    # emoji=False: text is printed as it is (`:name:` in a value stays literal; no 12 ms emoji table)
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width, emoji=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def error(message: str) -> None:
    """MESSAGE printed literally (paths, names and rules hold `[...]`, which is not markup here)."""
    console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)


def change_line(change) -> str:
    return f"[{STYLES[change.action]}]{escape(str(change))}[/]"


def created_line(item: str) -> str:
    """A line of init's `+` list, escaped."""
    return escape(item)


def print_plan(plan, title: str = "Plan") -> None:
    out = console()
    for notice in getattr(plan, "notices", ()):
        out.print(f"  [yellow]![/] {escape(notice)}")
    not_used = getattr(plan, "not_used", ())
    if plan.empty:
        out.print("No changes: the ecosystem matches ecosystem.yaml."
                  + (f" Not used: {', '.join(not_used)}." if not_used else ""))
        return
    for change in plan.changes:
        out.print("  " + change_line(change))
    for system, reason in plan.pending.items():
        out.print(f"  [dim]? {escape(system)}: pending ({escape(reason)})[/]")
    counts = {action: sum(1 for c in plan.changes if c.action == action) for action in STYLES}
    summary = f"{title}: {counts['create']} to create, {counts['update']} to update, {counts['delete']} to delete"
    if counts["conflict"]:
        summary += f"; {counts['conflict']} conflict(s): apply refuses them (see --adopt)"
    if plan.pending:
        summary += f"; {len(plan.pending)} system(s) pending"
    if not_used:
        summary += f"; not used: {', '.join(not_used)}"
    out.print(summary)


def _table(*columns: str):
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column)
    return table


HEALTH_STYLE = {"healthy": "green", "unhealthy": "red", "starting": "yellow"}


def _health(value: str | None) -> str:
    value = value or "unknown"
    return f"[{HEALTH_STYLE.get(value, 'dim')}]{value}[/]"


def print_up_summary(result) -> None:
    out = console()
    out.print("Stack is up." if result.changed else "Stack is up; nothing changed (already running and converged).")
    table = _table("service", "url", "health", "credentials")
    for service in result.services:
        table.add_row(escape(service.name), escape(service.url), _health(service.health),
                      escape(service.credentials))
    out.print(table)
    if result.endpoints:
        endpoints = _table("core", "address")
        for name, address in result.endpoints.items():
            endpoints.add_row(escape(name), escape(address))
        out.print(endpoints)
    for system, reason in result.pending.items():
        out.print(f"[yellow]pending[/] {escape(system)}: {escape(reason)}", markup=True)
    for note in result.notes:
        out.print(note, markup=False)


def print_status(report) -> None:
    out = console()
    table = _table("component", "state", "health", "url", "detail")
    for component in report.components:
        table.add_row(escape(component.name), escape(component.state), _health(component.health),
                      escape(component.url or ""), escape(component.detail))
    out.print(table)
    if report.failed:
        out.print(f"Failed: {', '.join(report.failed)} (the detail column says why): fix that, then run "
                  "`ecoctl up` again.", markup=False)
    if not report.running:
        starts = "is not up" if report.failed else "is not running: `ecoctl up` starts it"
        out.print(f"The stack {starts}. Compared with ecosystem.yaml: {', '.join(report.compared)} only.",
                  markup=False)
    if report.drift:
        out.print(f"Drift: {len(report.drift)} change(s) pending; `ecoctl plan` shows them, `ecoctl apply` converges.")
    elif report.pending:
        out.print(f"No drift in what could be read; not read: {', '.join(report.pending)}.", markup=False)
    else:
        out.print("No drift.")
    for system, reason in report.pending.items():
        out.print(f"[yellow]unknown[/] {escape(system)}: {escape(reason)}", markup=True)
    if report.alerts:
        alerts = _table("alert", "service", "severity", "firing since", "summary")
        for alert in report.alerts:
            alerts.add_row(escape(alert["name"]), escape(alert["service"]), escape(alert["severity"]),
                           escape(alert["since"]), escape(alert["summary"]))
        out.print(alerts)
    elif report.alerts is not None:
        out.print("No alerts firing.")


def print_service_result(result) -> None:
    out = console()
    if not result.applied and not result.spec_changed and not result.started:
        out.print(f"{result.name}: nothing to change.")
    for change in [] if result.shown_live else result.applied:
        out.print("  done " + change_line(change))
    if result.started:
        out.print(f"  {escape(result.name)} is {_health(result.health)}")
    for system, reason in result.pending.items():
        out.print(f"  [yellow]pending[/] {escape(system)}: {escape(reason)}")
    for note in result.notes:
        out.print("  " + escape(note))
    if result.pending:
        out.print("`ecoctl up` or `ecoctl apply` finishes what is pending.")


def print_service_table(rows: list[dict]) -> None:
    out = console()
    kinds = list(rows[0]["state"]) if rows else []
    table = _table("service", "template", "port", "pattern", *kinds)
    for row in rows:
        table.add_row(*(escape(str(cell)) for cell in (row["name"], row["template"], row["port"], row["pattern"],
                                                        *[row["state"][kind] for kind in kinds])))
    out.print(table)


class StageDisplay:
    """A live spinner on the running stage (on a terminal); finished stages stay as ✓ lines.

    A progress message starting with "waiting for " is a wait: it takes ONE live line with the
    elapsed time (the spinner's text on a terminal); off a terminal it is printed only when what is
    awaited changes, with the elapsed time, instead of once per poll."""

    WAIT_PREFIX = "waiting for "

    def __init__(self):
        self.out = console(stderr=True)
        self.current: str | None = None
        self.status = self.out.status("") if self.out.is_terminal else None
        self._wait_started: float | None = None
        self._wait_shown: str | None = None

    def stage(self, name: str) -> None:
        self._finish_current()
        self.current = name
        self._end_wait()
        if self.status is not None:
            self.status.update(f"[bold cyan]{name}[/]")
            self.status.start()
        else:
            self.out.print(f"> {name}", markup=False)

    def progress(self, message: str) -> None:
        from ecoctl.runtimes.base import Live

        if isinstance(message, Live):
            self._live(message)
            return
        if message.startswith(self.WAIT_PREFIX):
            self._wait(message)
            return
        self._end_wait()
        self.out.print(f"  [dim]{escape(message)}[/]", markup=True)

    def _live(self, message: str) -> None:
        """A terminal's one updating line (cut to its width); nothing elsewhere."""
        if self.status is not None:
            room = max(self.out.width - len(self.current or "") - 6, 20)
            self.status.update(f"[bold cyan]{escape(self.current or '')}[/] {escape(message[:room])}")
            self.status.start()

    def _wait(self, message: str) -> None:
        import time

        now = time.monotonic()
        if self._wait_started is None:
            self._wait_started = now
        elapsed = f"{now - self._wait_started:.0f}s"
        if self.status is not None:
            self.status.update(f"[bold cyan]{escape(self.current or '')}[/] {escape(message)} ({elapsed})")
            self._wait_shown = message
        elif message != self._wait_shown:
            self.out.print(f"  [dim]{escape(message)} ({elapsed})[/]", markup=True)
            self._wait_shown = message

    def _end_wait(self) -> None:
        if self._wait_started is not None and self.status is not None and self._wait_shown:
            import time

            self.out.print(f"  [dim]{escape(self._wait_shown)} (waited "
                           f"{time.monotonic() - self._wait_started:.0f}s)[/]", markup=True, highlight=False)
            self.status.update(f"[bold cyan]{self.current or ''}[/]")
        self._wait_started = None
        self._wait_shown = None

    def _finish_current(self) -> None:
        if self.current and self.status is not None:
            self._end_wait()
            self.out.print(f"[green]✓[/] {self.current}")

    def __enter__(self) -> "StageDisplay":
        return self

    def __exit__(self, kind, *rest) -> None:
        if kind is None:
            self._finish_current()
        elif self.current and self.status is not None:
            self.out.print(f"[red]✗[/] {self.current}")
        if self.status is not None:
            self.status.stop()


DOCTOR_MARKS = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "skip": "[dim]skip[/]", "fail": "[red]FAIL[/]"}


def print_doctor(checks) -> None:
    """One line per check: status, name, verdict, and its fix after `->`."""
    out = console()
    width = max((len(check.name) for check in checks), default=0)
    for check in checks:
        line = f"{DOCTOR_MARKS[check.status]} {escape(check.name.ljust(width))}  {escape(check.verdict)}"
        if check.fix and check.status != "ok":
            line += f" [dim]->[/] {escape(check.fix)}"
        out.print(line)
    failed = sum(1 for check in checks if check.status == "fail")
    out.print(f"{failed} problem(s) to fix." if failed else "All prerequisites pass.")
