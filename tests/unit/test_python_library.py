"""A program of ecoctl's own (the development sign-in) runs from a read-only copy of its modules and
distributions, compiled once by the program's Python: it runs with PYTHONDONTWRITEBYTECODE, so
without the copy's bytecode each start would compile them all again."""

from __future__ import annotations

import subprocess
import sys

from ecoctl.runtimes.local.core import python_library


def test_the_copy_is_compiled_once_readable_and_used(tmp_path):
    target = tmp_path / "lib" / "signin"
    target.parent.mkdir()
    assert python_library("ecoctl.issuer", ("itsdangerous",), target, sys.executable)
    tag = sys.implementation.cache_tag
    compiled = target / "ecoctl" / "issuer" / "__pycache__" / f"page.{tag}.pyc"
    assert compiled.is_file() and oct(compiled.stat().st_mode & 0o777) == "0o644"
    assert oct(compiled.parent.stat().st_mode & 0o777) == "0o755"
    assert (target / "itsdangerous" / "__pycache__" / f"signer.{tag}.pyc").is_file()
    assert not python_library("ecoctl.issuer", ("itsdangerous",), target, sys.executable)  # unchanged: kept
    # the program's Python (no site-packages: only the copy) loads the bytecode, and writes none
    loaded = subprocess.run([sys.executable, "-S", "-v", "-c", "import ecoctl.issuer.page, itsdangerous.signer"],
                            env={"PYTHONPATH": str(target), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"},
                            cwd=tmp_path, capture_output=True, text=True, check=True).stderr
    assert f"code object from '{compiled}'" in loaded, [line for line in loaded.splitlines() if "page" in line]


def test_without_a_python_nothing_is_compiled(tmp_path):
    target = tmp_path / "signin"
    assert python_library("ecoctl.issuer", (), target)
    assert not list(target.rglob("*.pyc"))
