"""ecoctl.service_templates: listing, finding and rendering service templates (real files, no mocks)."""

from __future__ import annotations

import hashlib
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from ecoctl.errors import UsageError
from ecoctl.service_templates import (find_template, list_templates, render_service_files, render_template,
                              template_variables)


def tree_checksum(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def make_template(root: Path, files: dict[str, str | bytes], manifest: str | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "template.yaml").write_text(manifest if manifest is not None else
                                        "name: own\ndescription: a team's template\ndefault_port: 9100\n"
                                        "variables:\n  service_name: {required: true}\n"
                                        "  greeting: \"hello {{ service_name }}\"\n")
    for rel, content in files.items():
        path = root / "files" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def test_shipped_templates_include_the_default():
    templates = {t.name: t for t in list_templates([])}
    default = templates["python-fastapi"]
    assert (default.default_port, default.source) == (8080, "shipped")
    assert default.description
    assert {v.name for v in default.variables} >= {"service_name", "package_name", "port", "description"}


def test_unknown_template_is_one_line_listing_the_available_ones():
    with pytest.raises(UsageError) as info:
        find_template("django", [])
    message = str(info.value)
    assert "\n" not in message and "'django'" in message and "python-fastapi" in message
    assert info.value.exit_code == 2


def test_missing_template_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        find_template(str(tmp_path / "nowhere"), [])
    with pytest.raises(UsageError, match="templates_dir"):
        list_templates([tmp_path / "no-team-dir"])


def test_team_templates_dir_adds_and_overrides(tmp_path):
    team = tmp_path / "team-templates"
    make_template(team / "worker", {"README.md.j2": "{{ service_name }}\n"},
                  "name: worker\ndefault_port: 9200\nvariables: {service_name: {required: true}}\n")
    make_template(team / "fastapi-ours", {"x.j2": "ours\n"},
                  "name: python-fastapi\ndefault_port: 8081\nvariables: {service_name: {required: true}}\n")
    (team / "notes").mkdir()  # a folder without a manifest is not a template
    templates = {t.name: t for t in list_templates([team])}
    assert templates["worker"].source == "team" and templates["worker"].default_port == 9200
    assert templates["python-fastapi"].source == "team" and templates["python-fastapi"].default_port == 8081
    assert "notes" not in templates
    assert find_template("worker", [team]).path == (team / "worker").resolve()


def test_own_template_by_path_renders_names_binaries_and_modes(tmp_path, monkeypatch):
    template_dir = make_template(tmp_path / "own-template", {
        "{{ service_name }}.txt.j2": "{{ greeting }} on {{ default_port }}, db {{ database_name }}\n",
        "bin/run.sh": "#!/bin/sh\necho {{ not rendered }}\n",
        "logo.png": b"\x89PNG\r\n\x1a\n\x00\xff",
    })
    (template_dir / "files" / "bin" / "run.sh").chmod(0o755)
    monkeypatch.chdir(tmp_path)
    template = find_template("./own-template", [])
    assert (template.name, template.source) == ("own", "path")

    target = tmp_path / "services" / "loyalty-points"
    written = render_template(template, target, {"service_name": "loyalty-points"})
    assert sorted(p.relative_to(target).as_posix() for p in written) == [
        "bin/run.sh", "logo.png", "loyalty-points.txt"]
    assert (target / "loyalty-points.txt").read_text() == \
        "hello loyalty-points on 9100, db loyalty_points_db\n"
    assert (target / "bin/run.sh").read_text() == "#!/bin/sh\necho {{ not rendered }}\n"
    assert (target / "bin/run.sh").stat().st_mode & 0o777 == 0o755
    assert (target / "logo.png").read_bytes() == b"\x89PNG\r\n\x1a\n\x00\xff"
    assert [p.name for p in target.parent.iterdir()] == ["loyalty-points"]  # no staging folder left


def test_undefined_variable_is_one_line_and_writes_nothing(tmp_path):
    template = find_template(str(make_template(tmp_path / "t", {
        "a.txt.j2": "fine {{ service_name }}\n",
        "b.txt.j2": "line one\n{{ service_name }} needs {{ secret_sauce }}\n",
    })), [])
    services = tmp_path / "services"
    services.mkdir()
    before = tree_checksum(tmp_path)
    with pytest.raises(UsageError) as info:
        render_template(template, services / "loyalty", {"service_name": "loyalty"})
    message = str(info.value)
    assert "\n" not in message and "secret_sauce" in message and "b.txt.j2" in message
    assert "line 2" in message
    assert tree_checksum(tmp_path) == before


def test_undefined_variable_into_an_existing_folder_writes_nothing(tmp_path):
    template = find_template(str(make_template(tmp_path / "t", {
        "a.txt.j2": "{{ service_name }}\n", "b.txt.j2": "{{ nope }}\n"})), [])
    target = tmp_path / "services" / "loyalty"
    target.mkdir(parents=True)
    with pytest.raises(UsageError, match="nope"):
        render_template(template, target, {"service_name": "loyalty"})
    assert list(target.iterdir()) == []


def test_missing_required_variable(tmp_path):
    with pytest.raises(UsageError, match="service_name"):
        render_service_files(find_template("python-fastapi", []), {"port": 8080})


def test_template_errors_are_usage_errors(tmp_path):
    bad_syntax = find_template(str(make_template(tmp_path / "syntax", {"x.j2": "{% if %}\n"})), [])
    with pytest.raises(UsageError, match="x.j2"):
        render_service_files(bad_syntax, {"service_name": "loyalty"})
    escaping = find_template(str(make_template(tmp_path / "escape", {"{{ where }}/x": "x"})), [])
    with pytest.raises(UsageError, match="invalid path"):
        render_service_files(escaping, {"service_name": "loyalty", "where": ".."})


@pytest.mark.parametrize("manifest, problem", [
    ("name: [unclosed\n", "not valid YAML"),
    ("- a list\n", "mapping"),
    ("name: x\nports: 1\n", "unknown key 'ports'"),
    ("name: x\ndefault_port: 70000\n", "default_port"),
    ("name: x\nvariables: {bad-name: 1}\n", "identifier"),
])
def test_bad_manifest_is_one_line(tmp_path, manifest, problem):
    path = make_template(tmp_path / "t", {"a": "a"}, manifest)
    with pytest.raises(UsageError, match=problem) as info:
        find_template(str(path), [])
    assert "\n" not in str(info.value)


def test_render_service_files_matches_what_render_template_writes(tmp_path):
    template = find_template("python-fastapi", [])
    variables = {"service_name": "loyalty-points", "port": 9300}
    files = render_service_files(template, variables)
    target = tmp_path / "loyalty-points"
    render_template(template, target, variables)
    on_disk = {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert on_disk == files


def test_rerender_changes_nothing_and_keeps_user_edits(tmp_path):
    template = find_template("python-fastapi", [])
    target = tmp_path / "loyalty"
    variables = {"service_name": "loyalty"}
    render_template(template, target, variables)
    assert render_template(template, target, variables) == []

    handlers = target / "loyalty" / "handlers.py"
    handlers.write_text(handlers.read_text() + "\n# my edit\n")
    (target / "README.md").unlink()
    assert render_template(template, target, variables) == [target / "README.md"]
    assert handlers.read_text().endswith("# my edit\n")
    assert render_template(template, target, variables, overwrite=True) == [handlers]
    assert "# my edit" not in handlers.read_text()


def test_default_template_for_a_hyphenated_name(tmp_path):
    template = find_template("python-fastapi", [])
    context = template_variables(template, {"service_name": "loyalty-points", "port": 9300})
    assert (context["package_name"], context["env_prefix"]) == ("loyalty_points", "LOYALTY_POINTS")
    files = render_service_files(template, {"service_name": "loyalty-points", "port": 9300})
    for rel in ("loyalty_points/handlers.py", "loyalty_points/models.py", "loyalty_points/middleware.py",
                "loyalty_points/metrics.py", "loyalty_points/migrations/0001_items.sql", "tests/test_auth.py",
                "README.md", "Dockerfile", "pyproject.toml"):
        assert rel in files, rel
    assert not any(rel.endswith(".j2") or "{{" in rel for rel in files)
    dockerfile = files["Dockerfile"].decode()
    assert "ARG BASE_IMAGE=python:3.12-slim" in dockerfile and "FROM ${BASE_IMAGE}" in dockerfile
    assert "USER 10001" in dockerfile and "HEALTHCHECK" in dockerfile and "urllib" in dockerfile
    assert "EXPOSE 9300" in dockerfile and "curl" not in dockerfile
    pyproject = files["pyproject.toml"].decode()
    assert 'name = "loyalty-points"' in pyproject and 'packages = ["loyalty_points"]' in pyproject
    assert b"DEFAULT_PORT = 9300" in files["loyalty_points/__init__.py"]
    assert b"LOYALTY_POINTS_DB_PASSWORD" in files["README.md"]

    target = tmp_path / "svc"
    render_template(template, target, {"service_name": "loyalty-points", "port": 9300})
    for path in target.rglob("*.py"):
        py_compile.compile(str(path), cfile=str(tmp_path / "c.pyc"), doraise=True)


@pytest.mark.parametrize("service, package", [("loyalty", "loyalty"), ("loyalty-points", "loyalty_points"),
                                              ("email", "email_service"), ("class", "class_service"),
                                              ("tests", "tests_service"), ("fastapi", "fastapi_service")])
def test_package_name_never_shadows_python(service, package):
    context = template_variables(find_template("python-fastapi", []), {"service_name": service})
    assert context["package_name"] == package


def test_invalid_package_name_is_refused():
    with pytest.raises(UsageError, match="package_name"):
        render_service_files(find_template("python-fastapi", []), {"service_name": "x1", "package_name": "a-b"})


def test_importing_the_module_does_not_import_jinja2():
    code = "import sys, ecoctl.service_templates; assert 'jinja2' not in sys.modules, 'jinja2 imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_manifest_version_and_changelog(tmp_path):
    shipped = find_template("python-fastapi", [])
    assert [v for v, _ in shipped.changelog] == list(range(1, shipped.version + 1)) and shipped.version >= 2
    assert "RFC 9457" in shipped.changelog[1][1]
    plain = make_template(tmp_path / "plain", {"x.j2": "x\n"}, "name: plain\n")
    assert (find_template(str(plain), []).version, find_template(str(plain), []).changelog) == (1, ())
    for bad in ("version: two", "version: 0", "changelog: [1]", "changelog: [{version: 1, notes: x}]"):
        folder = make_template(tmp_path / f"bad{abs(hash(bad))}", {"x.j2": "x\n"}, f"name: bad\n{bad}\n")
        with pytest.raises(UsageError, match="version|changelog"):
            find_template(str(folder), [])
