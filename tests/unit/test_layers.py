"""The package's layers hold: no import circle, and the import-linter contracts of pyproject.toml
(cli -> commands -> runtimes -> providers -> clients / contract / plan -> workspace / model -> support)
are kept. Every import counts, wherever it is written: at module level, inside a function (the
CLI's lazy imports), under `if TYPE_CHECKING:`. The README's layout names every module."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> its file, for every module of PACKAGE under ROOT."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of PACKAGE it imports, from every import statement in its file."""
    modules = module_files(root, package)

    def known(name: str) -> str | None:  # `from a.b import c`: module a.b.c, else a.b (c is a name in it)
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[:len(here.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                module = known(target) if target.split(".")[0] == package else None
                if module and module != name:
                    graph[name].add(module)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


CIRCLE_CASES = [
    ("none", {"a.py": "import pkg.b\n", "b.py": "x = 1\n"}, []),
    ("at module level", {"a.py": "from pkg import b\n", "b.py": "from pkg.a import x\n"}, [["pkg.a", "pkg.b"]]),
    ("inside a function", {"a.py": "import pkg.b\n", "b.py": "def f():\n    from pkg import a\n"},
     [["pkg.a", "pkg.b"]]),
    ("under TYPE_CHECKING", {"a.py": "import pkg.b\n",
                             "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n"},
     [["pkg.a", "pkg.b"]]),
    ("relative, three long", {"a.py": "from . import b\n", "b.py": "from .c import x\n", "c.py": "from .a import y\n"},
     [["pkg.a", "pkg.b", "pkg.c"]]),
    ("a package and its module", {"__init__.py": "from pkg import sub\n", "sub.py": "from pkg import app\n"},
     [["pkg", "pkg.sub"]]),
    ("a package importing what its module defines", {"__init__.py": "from pkg.sub import app\n", "sub.py": "app = 1\n"},
     []),
]


@pytest.mark.parametrize("why, files, expected", CIRCLE_CASES, ids=[case[0] for case in CIRCLE_CASES])
def test_the_walk_finds_circles_wherever_the_import_is(tmp_path, why, files, expected):
    (tmp_path / "pkg").mkdir()
    files = {"__init__.py": "", **files}
    for name, text in files.items():
        (tmp_path / "pkg" / name).write_text(text)
    assert circles(imports(tmp_path, "pkg")) == expected


def test_ecoctl_has_no_import_circle():
    graph = imports(ROOT, "ecoctl")
    assert "ecoctl.runtimes" in graph["ecoctl.commands.reconcile"]  # a lazy import inside a function is seen
    assert circles(graph) == []


def run_contracts(root: Path) -> subprocess.CompletedProcess:
    """import-linter's contracts of ROOT/pyproject.toml over ROOT/ecoctl, in a fresh process."""
    code = "from importlinter.cli import lint_imports_command\nlint_imports_command()\n"
    return subprocess.run([sys.executable, "-c", code, "--config", "pyproject.toml", "--no-cache"],
                          cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "COLUMNS": "200"})


def test_the_layer_contracts_are_kept():
    result = run_contracts(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


BREAKAGES = [
    ("model.py", "import ecoctl.contract", "ecoctl.model is not allowed to import ecoctl.contract"),
    ("providers/grafana.py", "def f():\n    from ecoctl.runtimes import get_runtime",
     "ecoctl.providers is not allowed to import ecoctl.runtimes"),
    ("contract.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ecoctl.plan import Change",
     "ecoctl.contract is not allowed to import ecoctl.plan"),
    ("commands/env.py", "import rich", "ecoctl.commands is not allowed to import rich"),
    ("runtimes/docker.py", "from ecoctl.providers import grafana",
     "ecoctl.runtimes is not allowed to import ecoctl.providers"),
    ("support/atomic.py", "import ecoctl.newmodule", "ecoctl.newmodule"),
]
"""(file, what is appended to it, what the contracts then report). The last adds a module no layer
names: the layers contract is exhaustive, so a new module must be given its place."""


def test_each_broken_layer_fails_the_contracts(tmp_path):
    shutil.copytree(ROOT / "ecoctl", tmp_path / "ecoctl", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "ecoctl" / "newmodule.py").write_text("")
    for module, line, _ in BREAKAGES:
        with open(tmp_path / "ecoctl" / module, "a") as file:
            file.write(f"\n{line}\n")
    result = run_contracts(tmp_path)
    report = " ".join(result.stdout.split())
    assert result.returncode == 1, result.stdout + result.stderr
    assert [broken for _, _, broken in BREAKAGES if broken not in report] == [], report


def test_the_readme_layout_names_every_module():
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("```")[1]
    entries = set(re.findall(r"^  (\S+?)(?:\.py)?/?\s", layout, re.M))
    package = ROOT / "ecoctl"
    modules = {path.stem for path in package.glob("*.py")} - {"__init__"}
    modules |= {path.name for path in package.iterdir() if (path / "__init__.py").exists()}
    assert sorted(modules - entries) == []
    commands_line = layout.split("  commands/", 1)[1].split("\n  runtimes/")[0]
    commands = {path.stem for path in (package / "commands").glob("*.py")} - {"__init__"}
    assert [name for name in sorted(commands) if not re.search(rf"\b{name}\b", commands_line)] == []
