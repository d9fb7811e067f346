"""Entry points: `uvicorn PACKAGE.main:app` or `python -m PACKAGE` (listens on $PORT)."""

from __future__ import annotations

import os

from .app import create_app

app = create_app()


def run() -> None:
    import uvicorn

    uvicorn.run(app, host=os.environ.get("HOST", "0.0.0.0"), port=app.state.settings.port,
                proxy_headers=True, forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"))
