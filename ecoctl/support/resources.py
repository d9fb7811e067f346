"""Where the shipped `templates/` and `stacks/` live: inside the wheel, or beside the package in a checkout."""

from __future__ import annotations

from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent


@cache
def _shipped(name: str) -> Path:
    for candidate in (PACKAGE_DIR / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"ecoctl's {name}/ folder is missing from this installation; reinstall ecoctl")


def templates_dir() -> Path:
    return _shipped("templates")


def stacks_dir() -> Path:
    return _shipped("stacks")
