"""support.template_tree: the cached walk of a template's files/ sees every added, renamed or removed
file between two renders in one process, and `{{ name }}` names render exactly as Jinja2 renders them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ecoctl.errors import UsageError
from ecoctl.service_templates import load_template, render_service_files, service_file_paths
from ecoctl.support import template_tree
from ecoctl.support.template_tree import simple_render

MANIFEST = "name: own\ndefault_port: 9100\nvariables:\n  service_name: {required: true}\n"
ANSWERS = {"service_name": "svc"}


def make_template(root: Path, files: list[str]) -> Path:
    (root / "files").mkdir(parents=True)
    (root / "template.yaml").write_text(MANIFEST)
    for rel in files:
        path = root / "files" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{{ service_name }}\n")
    return root


def age(root: Path, seconds: int = 3600) -> None:
    """Every folder below ROOT last changed long ago: the cache then trusts its stat checks."""
    past = time.time_ns() - seconds * 1_000_000_000
    for dirpath, _dirs, _files in os.walk(root):
        os.utime(dirpath, ns=(past, past))


def paths(root: Path) -> list[str]:
    return service_file_paths(load_template(root), ANSWERS)


def test_settled_tree_is_walked_once_then_checked_with_stat(tmp_path, monkeypatch):
    root = make_template(tmp_path / "t", ["a.txt", "{{ service_name }}/b.py.j2"])
    age(root)
    assert paths(root) == ["a.txt", "svc/b.py"]
    walks = []
    real_walk = template_tree._walk
    monkeypatch.setattr(template_tree, "_walk", lambda *args: walks.append(args) or real_walk(*args))
    assert paths(root) == paths(root) == ["a.txt", "svc/b.py"]
    assert walks == []  # nothing changed: served from the cache


@pytest.mark.parametrize("settled", [True, False])
def test_added_renamed_and_removed_files_are_seen_between_renders(tmp_path, settled):
    root = make_template(tmp_path / "t", ["a.txt", "sub/deep/c.txt"])
    files = root / "files"
    if settled:
        age(root)
    assert paths(root) == ["a.txt", "sub/deep/c.txt"]
    (files / "sub" / "deep" / "new.txt.j2").write_text("{{ service_name }}")  # added, two folders down
    assert paths(root) == ["a.txt", "sub/deep/c.txt", "sub/deep/new.txt"]
    if settled:
        age(root)
        assert paths(root) == ["a.txt", "sub/deep/c.txt", "sub/deep/new.txt"]
    (files / "a.txt").rename(files / "{{ service_name }}.md")  # renamed
    assert paths(root) == ["sub/deep/c.txt", "sub/deep/new.txt", "svc.md"]
    if settled:
        age(root)
    (files / "sub" / "deep" / "c.txt").unlink()  # removed
    assert paths(root) == ["sub/deep/new.txt", "svc.md"]
    assert render_service_files(load_template(root), ANSWERS) == {"sub/deep/new.txt": b"svc", "svc.md": b"{{ service_name }}\n"}


def test_a_recently_changed_folder_is_walked_again_even_with_an_unchanged_mtime(tmp_path):
    """File system timestamps are coarse: a rename within the same tick keeps the folder's mtime."""
    root = make_template(tmp_path / "t", ["a.txt"])
    files = root / "files"
    recent = os.stat(files).st_mtime_ns
    assert paths(root) == ["a.txt"]
    (files / "a.txt").rename(files / "b.txt")
    os.utime(files, ns=(recent, recent))  # as if in the same tick
    assert paths(root) == ["b.txt"]


def test_a_bad_name_added_later_is_the_same_error(tmp_path):
    root = make_template(tmp_path / "t", ["a.txt"])
    age(root)
    assert paths(root) == ["a.txt"]
    (root / "files" / "{{ nowhere }}.txt").write_text("")
    with pytest.raises(UsageError, match=r"own: \{\{ nowhere \}\}.txt: .*'nowhere' is undefined"):
        paths(root)


@pytest.mark.parametrize("text", [
    "{{ a }}", "{{a}}/x.py", "{{ a\t}}-{{ b }}", "x{{ a }}}", "{{{ a }}", "{{ a }}#{", "{{ true }}", "{{ none }}",
    "{{ a|upper }}", "{{- a }}", "{{ a -}}", "{# c #}{{ a }}", "{% if a %}{{ a }}{% endif %}", "{{ n }}",
    "{{ missing }}", "{{ range }}", "{{ a.upper() }}", "{{ a }}\r\n", "}}{{ b }}%}",
    "{{ a | python_package }}", "{{e|python_package}}/{{ e }}", "{{ a | upper }}", "{{ a | python_package | upper }}",
    "{{ a | true }}", "{{ missing | python_package }}", "{{ n | python_package }}",
    "def f():\n    return {'k': {{ n }}}\n", "x = {\n}\n{{ a }}\n\n", "{ {{ a }} }", "{{{{ a }}}}", "{{ a }}{",
    "f'{x}' {{ a }}\n{{ b }}", "{{ a }}\n{% raw %}{{ a }}{% endraw %}\n", "a\n{#- c -#}\n{{ a }}", "{{ a }}\n",
    "\n\n{{ n }}\n\n", "}}\n{{ a }}}}\n", "{{ a }}{{ n }}{{ b }}",
    "{{ images.python }}", "{{ images.keys }}", "{{ images.missing }}", "{{ images._x }}", "{{ a.upper }}",
    "{{ images.python | python_package }}", "{{ deep.one.two }}", "{{ images.true }}",
])
def test_simple_render_is_jinja2_or_declines(text):
    from jinja2 import StrictUndefined, TemplateError
    from jinja2.sandbox import SandboxedEnvironment

    from ecoctl.service_templates import python_package

    context = {"a": "Alpha-Beta", "b": "", "e": "email", "n": 5, "true": "not this", "none": "nor this",
               "images": {"python": "python:3.12-slim", "keys": "not the method", "_x": "private", "true": "t"},
               "deep": {"one": {"two": 2}}}
    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["python_package"] = python_package
    try:
        expected = env.from_string(text).render(context)
    except (TemplateError, AttributeError):  # python_package(5): AttributeError, as Jinja2 passes it on
        expected = None  # an error: only Jinja2 itself may report it
    got = simple_render(text, context, {"python_package": python_package})
    assert got is None or got == expected
    if text in ("{{ a }}", "{{a}}/x.py", "{{ a\t}}-{{ b }}", "x{{ a }}}", "}}{{ b }}%}", "{{ a | python_package }}",
                "{{e|python_package}}/{{ e }}", "def f():\n    return {'k': {{ n }}}\n", "{ {{ a }} }", "{{ n }}",
                "x = {\n}\n{{ a }}\n\n", "{{ a }}{{ n }}{{ b }}", "{{ images.python }}", "{{ deep.one.two }}"):
        assert got == expected  # the plain cases do take the fast path
    assert simple_render(text, context) is None or "|" not in text  # no filters given: none applied


def test_paths_of_the_shipped_templates_need_no_jinja2():
    """A plan of services whose files are all there lists their paths without importing Jinja2."""
    import subprocess
    import sys

    code = ("import sys\nfrom ecoctl.service_templates import find_template, service_file_paths\n"
            "for name in ('python-fastapi', 'go-gin'):\n"
            "    paths = service_file_paths(find_template(name), {'service_name': 'loyalty-points', 'port': 9000})\n"
            "    assert paths and all('{' not in path for path in paths), paths\n"
            "assert 'loyalty_points/main.py' in service_file_paths(find_template('python-fastapi'), "
            "{'service_name': 'loyalty-points'})\n"
            "assert 'jinja2' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_shipped_template_file_renders_as_jinja2_renders_it():
    """Each `.j2` file of every shipped template (old versions too), rendered without Jinja2 where it
    can be, is byte for byte what Jinja2 renders, for values that look like template syntax too."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    from ecoctl.service_templates import find_template, python_package, template_variables
    from ecoctl.support.resources import templates_dir

    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["python_package"] = python_package
    checked = 0
    for name in ("python-fastapi", "go-gin"):
        for answers in ({"service_name": "loyalty-points", "port": 9000},
                        {"service_name": "ab", "port": 1, "description": "{{ not }} {% this %} {# nor #} \"'\u00e9"}):
            template = find_template(name)
            known = {variable.name for variable in template.variables}
            context = template_variables(template, {key: value for key, value in answers.items()
                                                    if key in known or key == "service_name"})
            for source in sorted((templates_dir() / name).rglob("*.j2")):
                text = source.read_text(encoding="utf-8")
                got = simple_render(text, context, {"python_package": python_package})
                if got is not None:  # (None: Jinja2 renders it)
                    assert got == env.from_string(text).render(context), source
                    checked += 1
    assert checked >= 20  # today every file of them is plain placeholders: the comparison is not empty


def test_the_shipped_run_declarations_render_as_jinja2_renders_them():
    """`run.local` and `run.docker.build_args` of the shipped templates: the same text with or without Jinja2."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    from ecoctl.model import DEFAULT_IMAGES
    from ecoctl.service_templates import find_template, python_package, template_variables

    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["python_package"] = python_package
    compared = 0
    for name in ("python-fastapi", "go-gin"):
        template = find_template(name)
        context = {**template_variables(template, {"service_name": "loyalty-points"}),
                   "images": dict(DEFAULT_IMAGES), "build_dir": "/srv/build dir", "python": "/usr/bin/python3"}
        local = (template.run or {}).get("local") or {}
        texts = [*local.get("command", []), *(arg for step in local.get("build", []) for arg in step),
                 *((template.run or {}).get("docker") or {}).get("build_args", {}).values()]
        for text in map(str, texts):
            got = simple_render(text, context, {"python_package": python_package})
            if got is not None and "{{" in text:  # (None: Jinja2 renders it)
                assert got == env.from_string(text).render(context), text
                compared += 1
    assert compared >= 3  # today all of them are plain: the comparison is not empty


def test_what_installing_a_template_in_place_leaves_is_not_rendered(tmp_path):
    """`pip install templates/portfolio/files` in a checkout leaves an egg-info folder; a venv may sit there too."""
    root = make_template(tmp_path / "t", ["pkg/main.py", "pkg.egg-info/PKG-INFO", ".venv/bin/python", "egg-info.txt"])
    assert paths(root) == ["egg-info.txt", "pkg/main.py"]
