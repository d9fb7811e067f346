"""Terminal output: plans, results and errors for a person (rich), or one JSON object for CI."""

from __future__ import annotations

import json
import sys
from typing import Any

STYLES = {"create": "green", "update": "yellow", "delete": "red"}


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # a pipe or CI log gets full-width tables instead of rich's 80-column default
    width = None if stream.isatty() else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def error(message: str) -> None:
    """MESSAGE printed literally (paths, names and rules hold `[...]`, which is not markup here)."""
    from rich.markup import escape

    console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)


def change_line(change) -> str:
    from rich.markup import escape

    return f"[{STYLES[change.action]}]{escape(str(change))}[/]"


def print_plan(plan, title: str = "Plan") -> None:
    from rich.markup import escape

    out = console()
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
    from rich.markup import escape

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
    from rich.markup import escape

    out = console()
    table = _table("component", "state", "health", "url", "detail")
    for component in report.components:
        table.add_row(escape(component.name), escape(component.state), _health(component.health),
                      escape(component.url or ""), escape(component.detail))
    out.print(table)
    if report.drift:
        out.print(f"Drift: {len(report.drift)} change(s) pending; `ecoctl plan` shows them, `ecoctl apply` converges.")
    else:
        out.print("No drift.")
    for system, reason in report.pending.items():
        out.print(f"[yellow]unknown[/] {escape(system)}: {escape(reason)}", markup=True)


def print_service_result(result, verb: str) -> None:
    from rich.markup import escape

    out = console()
    if not result.applied and not result.spec_changed and not result.started:
        out.print(f"{result.name}: nothing to change.")
    for change in result.applied:
        out.print("  done " + change_line(change))
    if result.started:
        out.print(f"  started {escape(result.name)} ({_health(result.health)})")
    for system, reason in result.pending.items():
        out.print(f"  [yellow]pending[/] {escape(system)}: {escape(reason)}")
    for note in result.notes:
        out.print("  " + escape(note))
    if result.pending:
        out.print("`ecoctl up` or `ecoctl apply` finishes what is pending.")


def print_service_table(rows: list[dict]) -> None:
    from rich.markup import escape

    out = console()
    kinds = list(rows[0]["state"]) if rows else []
    table = _table("service", "template", "port", "pattern", *kinds)
    for row in rows:
        table.add_row(*(escape(str(cell)) for cell in (row["name"], row["template"], row["port"], row["pattern"],
                                                        *[row["state"][kind] for kind in kinds])))
    out.print(table)


class StageDisplay:
    """A live spinner on the running stage (on a terminal); finished stages stay as ✓ lines."""

    def __init__(self):
        self.out = console(stderr=True)
        self.current: str | None = None
        self.status = self.out.status("") if self.out.is_terminal else None

    def stage(self, name: str) -> None:
        self._finish_current()
        self.current = name
        if self.status is not None:
            self.status.update(f"[bold cyan]{name}[/]")
            self.status.start()
        else:
            self.out.print(f"> {name}", markup=False)

    def progress(self, message: str) -> None:
        from rich.markup import escape

        self.out.print(f"  [dim]{escape(message)}[/]", markup=True)

    def _finish_current(self) -> None:
        if self.current and self.status is not None:
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
