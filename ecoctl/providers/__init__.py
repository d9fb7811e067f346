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
]


def load_providers(workspace: "Workspace", only: set[str] | None = None) -> list["Provider"]:
    import importlib

    providers = []
    for module_name, class_name in PROVIDERS:
        cls = getattr(importlib.import_module(module_name), class_name)
        if only is None or cls.name in only:
            providers.append(cls(workspace))
    return providers
