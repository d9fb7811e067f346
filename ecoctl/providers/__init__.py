"""Resource providers, one module per external system. `SYSTEMS` is the apply order, declared once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from ecoctl.model import Ecosystem
    from ecoctl.plan import Options, Provider, RuntimeView
    from ecoctl.workspace import Workspace

# system -> (module, class), in the order a plan is applied; imported lazily so `--help` stays fast.
REGISTRY: dict[str, tuple[str, str]] = {
    "files": ("ecoctl.providers.files", "FilesProvider"),
    "compose": ("ecoctl.providers.compose", "ComposeProvider"),
    "postgres": ("ecoctl.providers.postgres", "PostgresProvider"),
    "authentik": ("ecoctl.providers.authentik", "AuthentikProvider"),
    "prometheus": ("ecoctl.providers.prometheus", "PrometheusProvider"),
    "grafana": ("ecoctl.providers.grafana", "GrafanaProvider"),
}
SYSTEMS = tuple(REGISTRY)
"""The systems in apply order: files, compose, postgres, authentik, prometheus, grafana."""
FILE_SYSTEMS = frozenset({"files", "compose", "prometheus", "grafana"})
"""Systems that are files in the ecosystem directory (no server needed to plan or apply them)."""


def systems_used(ecosystem: "Ecosystem") -> frozenset[str]:
    """The systems this ecosystem uses: the local runtime has no Authentik unless an external one
    is set; monitoring can be switched off."""
    systems = set(SYSTEMS)
    if not ecosystem.authentik_used:
        systems.discard("authentik")
    if not ecosystem.core.monitoring.enabled:
        systems -= {"prometheus", "grafana"}
    return frozenset(systems)


def load_providers(workspace: "Workspace", systems: Iterable[str], options: "Options | None" = None,
                   runtime: "RuntimeView | None" = None) -> list["Provider"]:
    """The providers of SYSTEMS, in apply order (RUNTIME: see `Provider`)."""
    import importlib

    from ecoctl.plan import Options

    wanted = set(systems)
    providers = []
    for system, (module_name, class_name) in REGISTRY.items():
        if system in wanted:
            cls = getattr(importlib.import_module(module_name), class_name)
            providers.append(cls(workspace, options or Options(), runtime=runtime))
    return providers
