"""`ecoctl ca export` and `ecoctl firewall`: what other hosts and browsers need to trust and reach
the ecosystem (the CA's root certificate; the pattern-3 firewall rules)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ecoctl.workspace import Workspace


def ca_export(workspace: "Workspace") -> str:
    """The root certificate (PEM) to trust; the CA is created first when it does not exist yet."""
    from ecoctl import certs

    pem = certs.root_pem(workspace.state_dir)
    if pem is None:
        certs.ensure(workspace.state_dir, workspace.ecosystem)
        pem = certs.root_pem(workspace.state_dir)
    return pem


def firewall_rules(workspace: "Workspace", fmt: str = "nftables", service: str | None = None) -> str:
    from ecoctl import firewall

    return firewall.render(workspace.ecosystem, fmt, service)
