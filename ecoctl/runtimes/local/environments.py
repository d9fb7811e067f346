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
from ecoctl.runtimes.local.build_account import BuildAccount
from ecoctl.runtimes.local.logs import tail_lines
from ecoctl.support.atomic import write_atomic

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


def python_dependencies(folder: Path) -> bytes:
    """What installing only the dependencies of the Python project in FOLDER (`uv pip install -r
    pyproject.toml`) depends on, as canonical bytes: pyproject.toml's `[project]` dependencies,
    optional dependencies and requires-python and its `[tool.uv]` settings (not the project's name
    or description), and requirements.txt, setup.py and setup.cfg whole. A pyproject.toml whose
    dependencies are dynamic (or that does not parse) counts whole."""
    import json
    import tomllib

    parts = {}
    for filename in DEPENDENCY_FILES:
        path = folder / filename
        if path.is_file():
            parts[filename] = path.read_bytes().decode(errors="replace")
    if "pyproject.toml" in parts:
        try:
            document = tomllib.loads(parts["pyproject.toml"])
        except tomllib.TOMLDecodeError:
            document = None
        project = (document or {}).get("project", {})
        if document is not None and "dependencies" not in project.get("dynamic", []):
            parts["pyproject.toml"] = {key: project.get(key) for key in
                                       ("dependencies", "optional-dependencies", "requires-python")}
            parts["pyproject.toml"]["tool.uv"] = document.get("tool", {}).get("uv")
    return json.dumps(parts, sort_keys=True).encode()


def installer_note() -> str:
    """What builds the services' environments, for `status`."""
    path, why = uv_binary()
    return "environment: uv" if path else f"environment: pip ({why})"


class Environments:
    """Mixed into LocalRuntime: install a service into its own virtual environment."""

    @property
    def builder(self):
        """Who runs build and install steps, where, in what environment (see build_account)."""
        return BuildAccount(self.account)

    def build_tree(self, name: str) -> Path:
        """The programs' user's own copy of a service's folder, where its build steps run."""
        return self.venv_dir(name).parent.parent / "build-src" / name

    def _dependencies_digest(self, name: str, python: str) -> str:
        digest = hashlib.sha256(f"{sys.version}\n{python}\n".encode())
        for filename in DEPENDENCY_FILES:
            path = self.service_dir(name) / filename
            if path.is_file():
                digest.update(filename.encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()

    def ensure_venv(self, name: str) -> bool:
        """Create the service's venv once and install it; reinstall only when its dependency
        files changed. True when something was installed. Both run as the programs' user (see
        build_account), from its own copy of the service's folder."""
        source = self.service_dir(name)
        folder = self.service_run_dir(name)
        if folder != source:  # the service's user cannot reach the ecosystem: run from a copy,
            self.copy_service(name)  # in a folder only we and that user may enter
        base_python = self.account.service_python()
        installable = (folder / "pyproject.toml").is_file() or (folder / "setup.py").is_file()
        if not installable and not (folder / "requirements.txt").is_file():
            raise EcoctlError(f"services/{name} has no pyproject.toml or requirements.txt: "
                              f"run `ecoctl apply` to restore its files")
        venv = self.venv_dir(name)
        stamp = venv.parent / f".{name}{INSTALL_STAMP}"  # root's: not in the folder the install writes
        digest = self._dependencies_digest(name, base_python)
        python = venv / "bin" / "python"
        builder, reader = self.builder, self.program_account(name)
        if python.exists() and stamp.exists() and stamp.read_text() == digest and builder.is_current(venv):
            builder.share(venv, reader)  # its user may have been made again since
            return False
        log = self.supervisor.logs_dir / f"{name}-install.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        venv.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        fresh = not python.exists() or not builder.is_current(venv)
        builder.owned_folder(venv, reader)
        workdir = builder.workspace(folder, self.build_tree(name))
        target = [str(workdir)] if installable else ["-r", str(workdir / "requirements.txt")]
        uv, _why = uv_binary()
        if uv is not None:  # uv: a venv in ~0.1 s, wheels linked from the user's shared cache
            uv = builder.program(uv)
            if fresh:
                self.progress(f"creating the virtual environment of {name} in {venv} (uv)")
                self._run_logged([uv, "venv", "--quiet", "--allow-existing", "--python", base_python, str(venv)],
                                 log, name)
            self.progress(f"installing {name} and its dependencies into {venv} (uv)")
            self._run_logged([uv, "pip", "install", "--quiet", "--python", str(python), *target, "uvicorn"],
                             log, name)
        else:
            if fresh:
                self.progress(f"creating the virtual environment of {name} in {venv}")
                self._run_logged([base_python, "-m", "venv", str(venv)], log, name)
            self.progress(f"installing {name} and its dependencies into {venv}")
            self._run_logged([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                              "--quiet", *target, "uvicorn"], log, name)
        builder.settle(venv)
        write_atomic(stamp, digest, durable=False)
        return True

    def _run_logged(self, argv: list[str], log: Path, name: str) -> None:
        """Run an install step as the programs' user (see build_account), its output to LOG."""
        builder = self.builder
        with open(log, "ab") as handle:
            handle.write(f"$ {' '.join(argv)}\n".encode())
            handle.flush()
            result = subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=builder.environment([argv[0]]), **builder.popen_options())
        if result.returncode != 0:
            last = tail_lines(log, 1)
            raise EcoctlError(f"installing {name} failed ({last[0].strip() if last else 'no output'}):"
                              f" see {log}")

