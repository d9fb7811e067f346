"""#29: what makes a template's build shareable between services (`run.local.shared`), and the
programs' user asked each question once per command."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecoctl.errors import UsageError
from ecoctl.runtimes.local.builds import PLACEHOLDER, _steps_in, shared_key
from ecoctl.runtimes.local.environments import python_dependencies

PYPROJECT = """[project]
name = "{name}"
description = "The {name} service"
version = "0.1.0"
dependencies = [{deps}]

[project.scripts]
{name} = "{name}.main:run"
"""


def project(tmp_path: Path, name: str, deps: str = '"fastapi>=0.115"', extra: str = "") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "pyproject.toml").write_text(PYPROJECT.format(name=name, deps=deps) + extra)
    return folder


def test_the_name_description_and_scripts_do_not_count(tmp_path):
    assert python_dependencies(project(tmp_path, "loyalty")) == python_dependencies(project(tmp_path, "rewards"))


@pytest.mark.parametrize("other", [
    {"deps": '"fastapi>=0.116"'},
    {"deps": '"fastapi>=0.115", "redis>=5"'},
    {"extra": '\n[tool.uv]\nindex-url = "https://mirror.example.org/simple"\n'},
    {"extra": '\n[project.optional-dependencies]\ntest = ["pytest"]\n'},
])
def test_dependencies_python_and_uv_settings_count(tmp_path, other):
    assert python_dependencies(project(tmp_path, "loyalty")) != python_dependencies(project(tmp_path, "rewards", **other))


def test_a_requirements_file_or_dynamic_dependencies_count_whole(tmp_path):
    base = python_dependencies(project(tmp_path, "loyalty"))
    folder = project(tmp_path, "rewards")
    (folder / "requirements.txt").write_text("redis>=5\n")
    assert python_dependencies(folder) != base
    dynamic = project(tmp_path, "wallet", extra="")
    text = (dynamic / "pyproject.toml").read_text().replace('version = "0.1.0"', 'dynamic = ["dependencies"]\nversion = "0.1.0"')
    (dynamic / "pyproject.toml").write_text(text)
    other = project(tmp_path, "points")
    (other / "pyproject.toml").write_text(text.replace("wallet", "points"))
    assert python_dependencies(dynamic) != python_dependencies(other)  # the whole file, names and all


def test_the_key_depends_on_the_steps_as_they_run_for_any_service(tmp_path):
    loyalty, rewards = project(tmp_path, "loyalty"), project(tmp_path, "rewards")
    def steps(build: Path, *more: str):
        return (("uv", "venv", f"{build}/venv"), ("uv", "pip", "install", "-r", "pyproject.toml", *more))

    def key(folder: Path, build: Path, *more: str) -> str:
        return shared_key("python-dependencies", _steps_in(steps(build, *more), build, PLACEHOLDER), folder)

    assert key(loyalty, Path("/b/loyalty")) == key(rewards, Path("/b/rewards"))
    assert key(loyalty, Path("/b/loyalty")) != key(rewards, Path("/b/rewards"), "uvicorn")


def test_an_unknown_shared_kind_is_refused(tmp_path, monkeypatch):
    from ecoctl import template_run

    template = type("T", (), {"run": {"local": {"command": ["true"], "shared": "everything"}},
                              "path": tmp_path, "name": "t"})()
    monkeypatch.setattr(template_run, "template_of", lambda workspace, name: template)
    monkeypatch.setattr(template_run, "_run_context", lambda *args, **kwargs: {})
    with pytest.raises(UsageError) as caught:
        template_run.local_run(None, "t", tmp_path, "python3")
    assert "run.local.shared must be one of: python-dependencies" in str(caught.value)


def test_the_shipped_python_templates_share_their_environments():
    from ecoctl.service_templates import load_template
    from ecoctl.support.resources import templates_dir

    root = templates_dir()
    for name in ("python-fastapi", "portfolio"):
        local = load_template(root / name).run["local"]
        assert local["shared"] == "python-dependencies"
        assert "." not in local["build"][-1]  # only the dependencies: the code is imported from the folder


def test_a_question_to_the_programs_user_is_asked_once_per_command(monkeypatch):
    """Each `runuser` check costs a process (~0.1-0.2 s under load); the runtime makes one Account
    per command, and a new command asks again."""
    from ecoctl.runtimes.local.accounts import Account

    calls = []
    monkeypatch.setattr(Account, "_run_as", lambda self, argv: calls.append(argv) or True)
    account = Account("ecoctl")
    assert account.succeeds(["test", "-x", "/bin/sh"]) and account.succeeds(["test", "-x", "/bin/sh"])
    assert account.succeeds(["test", "-x", "/bin/true"])
    assert calls == [["test", "-x", "/bin/sh"], ["test", "-x", "/bin/true"]]
    assert Account("ecoctl").succeeds(["test", "-x", "/bin/sh"]) and len(calls) == 3


def test_a_cached_web_build_is_keyed_by_its_inputs_and_node_not_by_its_ecosystem(tmp_path, monkeypatch):
    """`shared: node-build`: two ecosystems' copies of the same web app (other folders, other build
    folders) share a key; a changed source, lockfile or Node.js version is another key; a file the
    build does not read (not in `inputs`) is not."""
    import shutil
    import subprocess

    from ecoctl.runtimes.local.builds import cached_build_key

    class Run:
        inputs = ("package-lock.json", "src/**/*")
        build = (("npm", "ci"), ("npm", "run", "build", "--", "--outDir", "BUILD/dist"))

    def app(name: str, text: str = "export const a = 1;\n", lock: str = "{}") -> Path:
        folder = tmp_path / name
        (folder / "src").mkdir(parents=True)
        (folder / "src" / "main.tsx").write_text(text)
        (folder / "package-lock.json").write_text(lock)
        return folder

    def key(folder: Path, build_dir: str) -> str:
        steps = _steps_in(tuple(tuple(a.replace("BUILD", build_dir) for a in s) for s in Run.build),
                          Path(build_dir), PLACEHOLDER)
        return cached_build_key(Run, steps, folder)

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/node" if name == "node" else None)
    version = {"out": "v18.19.0\n"}
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, version["out"], ""))
    first = key(app("one"), "/eco1/.ecoctl/build/web")
    assert key(app("two"), "/eco2/.ecoctl/build/web") == first
    other = app("three")
    (other / "README.md").write_text("not an input")
    assert key(other, "/eco3/build/web") == first
    assert key(app("four", text="export const a = 2;\n"), "/eco4/build/web") != first
    assert key(app("five", lock='{"lockfileVersion": 3}'), "/eco5/build/web") != first
    version["out"] = "v20.11.0\n"
    assert key(app("six"), "/eco6/build/web") != first
