"""Resource providers, one module per external system, listed here in dependency order."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ecoctl.plan import Provider
    from ecoctl.workspace import Workspace

# (module, class) in the order a plan is applied; imported lazily so `--help` stays fast.
PROVIDERS: list[tuple[str, str]] = [
    ("ecoctl.providers.files", "FilesProvider"),
    ("ecoctl.providers.compose", "ComposeProvider"),
    ("ecoctl.providers.postgres", "PostgresProvider"),
    ("ecoctl.providers.authentik", "AuthentikProvider"),
    ("ecoctl.providers.prometheus", "PrometheusProvider"),
    ("ecoctl.providers.grafana", "GrafanaProvider"),
]


def load_providers(workspace: "Workspace", only: set[str] | None = None,
                   **options) -> list["Provider"]:
    """The providers in apply order; `options` go to the providers that declare them
    (e.g. `drop_data` for postgres, `reload` for prometheus)."""
    import importlib
    import inspect

    providers = []
    for module_name, class_name in PROVIDERS:
        if only is not None and module_name.rsplit(".", 1)[1] not in only:
            continue
        cls = getattr(importlib.import_module(module_name), class_name)
        accepted = inspect.signature(cls.__init__).parameters
        providers.append(cls(workspace, **{k: v for k, v in options.items() if k in accepted}))
    return providers
