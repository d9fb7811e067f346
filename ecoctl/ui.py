"""Terminal output: plans, results and errors for a person (rich), or one JSON object for CI."""

from __future__ import annotations

import json
import sys
from typing import Any

STYLES = {"create": "green", "update": "yellow", "delete": "red"}


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def error(message: str) -> None:
    console(stderr=True).print(f"[bold red]error:[/] {message}", markup=True, highlight=False)


def change_line(change) -> str:
    from rich.markup import escape

    return f"[{STYLES[change.action]}]{escape(str(change))}[/]"


def print_plan(plan, title: str = "Plan") -> None:
    from rich.markup import escape

    out = console()
    if plan.empty:
        out.print("No changes: the ecosystem matches ecosystem.yaml.")
        return
    for change in plan.changes:
        out.print("  " + change_line(change))
    for system, reason in plan.pending.items():
        out.print(f"  [dim]? {escape(system)}: pending ({escape(reason)})[/]")
    counts = {action: sum(1 for c in plan.changes if c.action == action) for action in STYLES}
    summary = f"{title}: {counts['create']} to create, {counts['update']} to update, {counts['delete']} to delete"
    if plan.pending:
        summary += f"; {len(plan.pending)} system(s) pending"
    out.print(summary)
