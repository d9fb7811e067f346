"""Every shipped template (the core portfolio one too) declares how each runtime builds and runs it
(template.yaml `run`), with placeholders that render from the names ecoctl gives at run time; the loader
accepts the new keys."""

from __future__ import annotations

import pytest

from ecoctl.service_templates import find_template, template_variables


@pytest.mark.parametrize("name", ["go-gin", "portfolio", "python-fastapi"])
def test_run_section_renders_with_the_runtime_names(name):
    from jinja2 import Environment, StrictUndefined

    template = find_template(name)
    assert template.version >= 1 and template.changelog[0][0] == 1
    local, docker = template.run["local"], template.run["docker"]
    context = {**template_variables(template, {"service_name": "loyalty"}), "build_dir": "/state/build/loyalty",
               "python": "/usr/bin/python3",
               "images": {"go": "golang:1.26", "base": "debian:bookworm-slim", "python": "python:3.12-slim"}}
    env = Environment(undefined=StrictUndefined)

    def render(value: str) -> str:
        return env.from_string(value).render(context)

    assert local["inputs"] and all(isinstance(pattern, str) for pattern in local["inputs"])
    builds = [[render(arg) for arg in step] for step in local["build"]]
    command = [render(arg) for arg in local["command"]]
    assert command[0].startswith("/state/build/loyalty/")
    assert any(command[0] in " ".join(step) or "/state/build/loyalty/venv" in " ".join(step) for step in builds)
    assert {key: render(value) for key, value in docker["build_args"].items()}


def test_loader_refuses_a_run_section_that_is_not_a_mapping(tmp_path):
    from ecoctl.errors import UsageError

    (tmp_path / "files").mkdir()
    (tmp_path / "template.yaml").write_text("name: t\nrun: [local]\n")
    with pytest.raises(UsageError, match="`run` must map"):
        find_template(str(tmp_path))
