"""`extends:` in template.yaml: a template made of another (the portfolio web app of react-vite)."""

from __future__ import annotations

import shutil

import pytest

from ecoctl.errors import UsageError
from ecoctl.service_templates import find_template, load_template, render_service_files
from ecoctl.support.resources import templates_dir


def test_an_extension_renders_its_base_files_and_replaces_the_ones_it_has():
    web = find_template("portfolio-web")
    base = find_template("react-vite")
    assert web.base is not None and (web.base.name, web.base.version) == ("react-vite", base.version)
    files = render_service_files(web, {"service_name": "web", "port": 3000})
    starter = render_service_files(base, {"service_name": "web", "port": 3000})
    assert set(starter) - {"api/openapi.json"} <= set(files)  # every base file is there
    assert files["serve.py"] == starter["serve.py"]  # one source: the base's
    assert files["src/App.tsx"] != starter["src/App.tsx"] and b"Portfolios" in files["src/App.tsx"]
    assert b'"/portfolios"' in files["api/openapi.json"]
    assert files["app.json"] == b'{"title": "Portfolio Manager", "scope": "openid profile email offline_access"}\n'


def test_an_extension_inherits_the_base_variables_and_run():
    web = find_template("portfolio-web")
    assert [v.name for v in web.variables][:2] == ["port", "scope"]  # the base's, then its own
    assert {v.name: v.default for v in web.variables}["service_name"] == "web"  # its own default: init's `web`
    assert web.run == find_template("react-vite").run
    assert (web.core, web.optional, web.client, web.calls) == (True, True, "public", ("portfolio",))


def _copy(tmp_path, version_line: str):
    for name in ("react-vite", "portfolio-web"):
        shutil.copytree(templates_dir() / name, tmp_path / name)
    manifest = tmp_path / "portfolio-web" / "template.yaml"
    manifest.write_text(manifest.read_text().replace("extends: {template: react-vite, version: 1}", version_line))
    return tmp_path / "portfolio-web"


def test_a_base_version_that_is_not_kept_is_one_line(tmp_path):
    folder = _copy(tmp_path, "extends: {template: react-vite, version: 7}")
    with pytest.raises(UsageError, match=r"template.yaml:\d+: template 'react-vite' version 7 is not beside"):
        load_template(folder)


def test_a_base_kept_in_versions_is_used_at_that_version(tmp_path):
    folder = _copy(tmp_path, "extends: {template: react-vite, version: 1}")
    kept = tmp_path / "react-vite" / "versions" / "1"
    shutil.copytree(tmp_path / "react-vite", kept, ignore=shutil.ignore_patterns("versions"))
    (kept / "files" / "OLD.md").write_text("old\n")
    manifest = tmp_path / "react-vite" / "template.yaml"
    manifest.write_text(manifest.read_text().replace("version: 1\n", "version: 2\n", 1))
    assert "OLD.md" in render_service_files(load_template(folder), {"service_name": "web", "port": 3000})


@pytest.mark.parametrize("value", ["react-vite", "{template: react-vite}", "{template: react-vite, version: true}"])
def test_a_malformed_extends_is_one_line(tmp_path, value):
    folder = _copy(tmp_path, f"extends: {value}")
    with pytest.raises(UsageError, match=r"`extends` must be \{template: NAME, version: N\}"):
        load_template(folder)
