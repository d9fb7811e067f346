"""Rows of `status` for what an ecosystem uses but does not run: they are asked, not managed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecoctl.runtimes.base import ComponentStatus

if TYPE_CHECKING:
    from ecoctl.model import Ecosystem

READY_PATH = "/-/health/ready/"


def external_authentik(ecosystem: "Ecosystem", timeout: float = 2.0) -> ComponentStatus | None:
    """The external Authentik (`core.authentik.url`), asked once whether it is ready; None when
    the stack runs its own."""
    url = ecosystem.core.authentik.url
    if not url:
        return None
    import httpx

    from ecoctl.clients.authentik import AuthentikClient

    try:  # the readiness endpoint needs no token
        with AuthentikClient(url, "", timeout=timeout, retries=0) as client:
            ready = client.health_ready()
    except httpx.HTTPError:
        ready = False
    detail = "external: not run by ecoctl; " + (
        f"answers {READY_PATH}" if ready else f"does not answer {READY_PATH}: check core.authentik.url")
    return ComponentStatus("authentik", "external", "healthy" if ready else "unhealthy", url, detail)


def with_external_authentik(rows: list[ComponentStatus], ecosystem: "Ecosystem") -> list[ComponentStatus]:
    """ROWS with the external Authentik's row (if there is one) where the stack's own would be: after redis."""
    authentik = external_authentik(ecosystem)
    if authentik is None:
        return rows
    after = next((index + 1 for index, row in enumerate(rows) if row.name == "redis"), len(rows))
    return [*rows[:after], authentik, *rows[after:]]
