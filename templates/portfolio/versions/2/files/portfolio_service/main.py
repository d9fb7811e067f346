"""The ASGI entry point for uvicorn: `uvicorn portfolio_service.main:app`, configured from the environment."""

from __future__ import annotations

import sys

from .app import create_app
from .settings import Settings, SettingsError

try:
    settings = Settings.from_env()
except SettingsError as exc:
    sys.exit(f"portfolio: {exc}")

app = create_app(settings)
