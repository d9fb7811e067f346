"""Plans and applies over a workspace's providers (the terminal-free core the CLI calls)."""

from __future__ import annotations

from typing import Callable

from ecoctl.plan import Change, Plan, apply_plan, make_plan
from ecoctl.providers import PROVIDERS, load_providers

SYSTEMS = tuple(module.rsplit(".", 1)[1] for module, _ in PROVIDERS)
"""The systems in apply order: files, compose, postgres, authentik, prometheus, grafana."""


def applicable_systems(workspace) -> set[str]:
    """The systems this ecosystem uses: the local runtime has no Authentik unless an external one is set."""
    systems = set(SYSTEMS)
    ecosystem = workspace.ecosystem
    if ecosystem.runtime == "local" and not ecosystem.core.authentik.url:
        systems.discard("authentik")
    if not ecosystem.core.monitoring.enabled:
        systems -= {"prometheus", "grafana"}
    return systems


def _providers(workspace, only: set[str] | None, **options):
    systems = applicable_systems(workspace)
    return load_providers(workspace, only=systems & only if only else systems, **options)


def make_workspace_plan(workspace, only: set[str] | None = None, **options) -> Plan:
    providers = _providers(workspace, only, **options)
    try:
        return make_plan(providers)
    finally:
        for provider in providers:
            provider.close()


def apply_workspace(workspace, only: set[str] | None = None,
                    on_change: Callable[[Change], None] | None = None, **options) -> Plan:
    providers = _providers(workspace, only, **options)
    try:
        return apply_plan(providers, on_change=on_change)
    finally:
        for provider in providers:
            provider.close()
