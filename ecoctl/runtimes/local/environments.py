"""Each Python service's virtual environment under `.ecoctl/venvs/`, reinstalled only when its
dependency files change."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ecoctl.errors import EcoctlError
from ecoctl.runtimes.local.logs import tail_lines

DEPENDENCY_FILES = ("pyproject.toml", "requirements.txt", "setup.py", "setup.cfg")
INSTALL_STAMP = ".ecoctl-install"


@functools.lru_cache(maxsize=1)
def uv_binary() -> tuple[str | None, str]:
    """(the uv binary, "") when uv runs here, else (None, why not). uv comes with ecoctl (the `uv`
    package); `ECOCTL_INSTALLER=pip` forces pip (to compare, or to work around a uv problem)."""
    if os.environ.get("ECOCTL_INSTALLER", "").lower() == "pip":
        return None, "ECOCTL_INSTALLER=pip"
    try:
        from uv import find_uv_bin

        path = find_uv_bin()
    except (ImportError, FileNotFoundError):
        path = shutil.which("uv")
        if path is None:
            return None, "uv is not installed"
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30,
                                stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"uv cannot run: {path}: {getattr(exc, 'strerror', None) or type(exc).__name__}"
    if result.returncode != 0:
        return None, f"uv cannot run: {path} --version exits {result.returncode}"
    return path, ""


def installer_note() -> str:
    """What builds the services' environments, for `status`."""
    path, why = uv_binary()
    return "environment: uv" if path else f"environment: pip ({why})"


def uv_environment() -> dict[str, str]:
    """uv reads its own settings, not pip's: the pip index settings of the environment are passed on,
    and uv trusts the system's certificate store as pip, git and curl do here (its default is its
    own bundled roots, which fail behind a TLS-inspecting proxy whose CA the system trusts)."""
    env = dict(os.environ)
    for pip_name, uv_name in (("PIP_INDEX_URL", "UV_INDEX_URL"), ("PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL"),
                              ("PIP_FIND_LINKS", "UV_FIND_LINKS"), ("PIP_CERT", "SSL_CERT_FILE")):
        if env.get(pip_name) and not env.get(uv_name):
            env[uv_name] = env[pip_name]
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    env.setdefault("UV_NATIVE_TLS", "1")
    return env


def _outer_pip() -> bool:
    """Whether the interpreter running ecoctl has a pip that installs into other environments."""
    try:
        from pip import __version__
    except ImportError:
        return False
    major, minor = (int(part) for part in __version__.split(".")[:2])
    return (major, minor) >= (22, 3)




class Environments:
    """Mixed into LocalRuntime: install a service into its own virtual environment."""

    def _dependencies_digest(self, name: str, python: str) -> str:
        digest = hashlib.sha256(f"{sys.version}\n{python}\n".encode())
        for filename in DEPENDENCY_FILES:
            path = self.service_dir(name) / filename
            if path.is_file():
                digest.update(filename.encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()

    def ensure_venv(self, name: str) -> bool:
        """Create the service's venv once and install it; reinstall only when its dependency
        files changed. True when something was installed."""
        from ecoctl.runtimes.local.accounts import copy_readable_tree

        source = self.service_dir(name)
        folder = self.service_run_dir(name)
        if folder != source:  # the programs' user cannot reach the ecosystem: run from a copy
            folder.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            copy_readable_tree(source, folder)
        base_python = self.account.service_python()
        installable = (folder / "pyproject.toml").is_file() or (folder / "setup.py").is_file()
        requirements = folder / "requirements.txt"
        if not installable and not requirements.is_file():
            raise EcoctlError(f"services/{name} has no pyproject.toml or requirements.txt: "
                              f"run `ecoctl apply` to restore its files")
        venv = self.venv_dir(name)
        stamp = venv / INSTALL_STAMP
        digest = self._dependencies_digest(name, base_python)
        python = venv / "bin" / "python"
        if python.exists() and stamp.exists() and stamp.read_text() == digest:
            return False
        log = self.supervisor.logs_dir / f"{name}-install.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        target = [str(folder)] if installable else ["-r", str(requirements)]
        uv, _why = uv_binary()
        if uv is not None:  # uv: a venv in ~0.1 s, wheels linked from its shared cache
            if not python.exists():
                self.progress(f"creating the virtual environment of {name} in {venv} (uv)")
                venv.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
                self._run_logged([uv, "venv", "--quiet", "--python", base_python, str(venv)], log, name,
                                 env=uv_environment())
            self.progress(f"installing {name} and its dependencies into {venv} (uv)")
            self._run_logged([uv, "pip", "install", "--quiet", "--python", str(python), *target, "uvicorn"],
                             log, name, env=uv_environment())
            stamp.write_text(digest)
            return True
        outer_pip = _outer_pip()
        if not python.exists():
            self.progress(f"creating the virtual environment of {name} in {venv}")
            # ensurepip is the slow part of a venv (~20s on a small machine): when ecoctl's own
            # pip can install into another interpreter (`pip --python`, pip >= 22.3), skip it
            venv.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            self._run_logged([base_python, "-m", "venv", *(["--without-pip"] if outer_pip else []),
                              str(venv)], log, name)
        self.progress(f"installing {name} and its dependencies into {venv}")
        if outer_pip and not (venv / "bin" / "pip").exists():
            pip = [sys.executable, "-m", "pip", "--python", str(python)]
        else:
            if not (venv / "bin" / "pip").exists():
                self._run_logged([str(python), "-m", "ensurepip"], log, name)
            pip = [str(python), "-m", "pip"]
        self._run_logged([*pip, "install", "--disable-pip-version-check", "--no-input", "--quiet",
                          *target, "uvicorn"], log, name)
        stamp.write_text(digest)
        return True

    def _run_logged(self, argv: list[str], log: Path, name: str, env: dict[str, str] | None = None) -> None:
        with open(log, "ab") as handle:
            handle.write(f"$ {' '.join(argv)}\n".encode())
            handle.flush()
            result = subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env)
        if result.returncode != 0:
            last = tail_lines(log, 1)
            raise EcoctlError(f"installing {name} failed ({last[0].strip() if last else 'no output'}):"
                              f" see {log}")

