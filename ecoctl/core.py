"""Plans and applies over a workspace's providers (the terminal-free core the CLI calls)."""

from __future__ import annotations

from typing import Callable

from ecoctl.plan import Change, Plan, apply_plan, make_plan
from ecoctl.providers import load_providers


def make_workspace_plan(workspace, only: set[str] | None = None) -> Plan:
    providers = load_providers(workspace, only=only)
    try:
        return make_plan(providers)
    finally:
        for provider in providers:
            provider.close()


def apply_workspace(workspace, only: set[str] | None = None,
                    on_change: Callable[[Change], None] | None = None) -> Plan:
    providers = load_providers(workspace, only=only)
    try:
        return apply_plan(providers, on_change=on_change)
    finally:
        for provider in providers:
            provider.close()
