"""The typed payloads of the Authentik provider's changes (one dataclass per kind of change)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CreateProvider:
    service: str


@dataclass(frozen=True)
class UpdateProvider:
    service: str
    pk: int
    patch: dict = field(repr=False)


@dataclass(frozen=True)
class DeleteProvider:
    service: str
    pk: int
    name: str = ""
    """The provider's name: its client_credentials service account is deleted with it."""


@dataclass(frozen=True)
class CreateApplication:
    service: str


@dataclass(frozen=True)
class BindApplication:
    service: str
    adopt: bool = False
    """Also mark it as this ecosystem's (`--adopt`)."""


@dataclass(frozen=True)
class DeleteApplication:
    slug: str
