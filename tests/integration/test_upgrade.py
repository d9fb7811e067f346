"""Acceptance for `ecoctl upgrade`: real ecosystems, real templates (a team folder, a git repository
made with `git init`, the shipped python-fastapi), the real CLI in a subprocess, real `git merge-file`.
No server is needed: services are added with --no-apply."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ecoctl.commands.init import init_ecosystem
from ecoctl.model import EcosystemFile
from tests.helpers import run_ecoctl, uv_binary, uv_env

APP_V1 = """# {{ service_name }}: the app
GREETING = "hello"


def greet(name):
    return f"{GREETING}, {name}"


def port():
    return {{ port }}


TIMEOUT = 5
"""
APP_V2 = APP_V1.replace('GREETING = "hello"', 'GREETING = "hello there"')
SETTINGS_V1 = 'LEVEL = "info"\nRETRIES = 3\n'
SETTINGS_V2 = 'LEVEL = "warning"\nRETRIES = 3\n'


def write_template(folder: Path, version: int, files: dict[str, str]) -> None:
    shutil.rmtree(folder / "files", ignore_errors=True)  # a new release replaces the files (not .git)
    (folder / "files").mkdir(parents=True)
    (folder / "template.yaml").write_text(
        f"name: greeter\ndescription: a test template\ndefault_port: 8300\nversion: {version}\n"
        f"changelog:\n  - {{version: {version}, summary: release {version}}}\n"
        "variables:\n  service_name: {required: true}\n  port: 8300\n")
    for rel, text in files.items():
        (folder / "files" / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / "files" / rel).write_text(text)


V1 = {"app.py.j2": APP_V1, "settings.py": SETTINGS_V1, "notes.txt": "notes\n", "old.txt": "old\n"}
V2 = {"app.py.j2": APP_V2, "settings.py": SETTINGS_V2, "new.txt": "new in v2\n"}


@pytest.fixture
def eco(tmp_path, monkeypatch):
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    EcosystemFile.load(root / "ecosystem.yaml").update(lambda doc: doc.__setitem__("templates_dir", "team"))
    (root / "team").mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # git templates are cached here
    return root


def ecoctl(root: Path, *args: str):
    return run_ecoctl(*args, cwd=root)


def checksum(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def record(folder: Path) -> dict:
    from ruamel.yaml import YAML

    return YAML(typ="safe").load((folder / ".ecoctl-template.yml").read_text())


def test_upgrade_merges_edits_and_leaves_diff3_markers_for_overlaps(eco):
    write_template(eco / "team" / "greeter", 1, V1)
    added = ecoctl(eco, "add-service", "greet", "--template", "greeter", "--no-apply")
    assert added.returncode == 0, added.stderr
    folder = eco / "services" / "greet"
    assert record(folder) == {"template": "greeter", "source": "team", "ref": "greeter", "version": 1,
                              "commit": None, "answers": {"service_name": "greet", "port": 8300,
                                                          "base_image": "python:3.12-slim"}}
    assert (folder / "app.py").read_text() == APP_V1.replace("{{ service_name }}", "greet").replace("{{ port }}", "8300")

    # the team edits one hunk the template will not change, and one it will
    app = (folder / "app.py").read_text().replace("TIMEOUT = 5", "TIMEOUT = 30  # ours")
    (folder / "app.py").write_text(app)
    (folder / "settings.py").write_text('LEVEL = "debug"\nRETRIES = 3\n')
    (folder / "old.txt").write_text("old, but edited\n")

    write_template(eco / "team" / "greeter", 2, V2)  # v2 published; the folder keeps no v1
    listed = ecoctl(eco, "templates", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {"service": "greet", "template": "greeter", "version": 1, "latest": 2, "behind": True} \
        in json.loads(listed.stdout)["services"]
    plan = ecoctl(eco, "plan", "--only", "files", "--json")
    notices = json.loads(plan.stdout)["notices"]
    assert any("greet" in n and "v1" in n and "ecoctl upgrade greet" in n for n in notices), notices
    assert json.loads(plan.stdout)["changes"] == []  # a notice, not a change

    before = checksum(eco / "services")
    dry = ecoctl(eco, "upgrade", "greet", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert checksum(eco / "services") == before  # nothing written
    assert "--- a/services/greet/app.py\n+++ b/services/greet/app.py" in dry.stdout
    assert '-GREETING = "hello"\n+GREETING = "hello there"' in dry.stdout
    assert "+<<<<<<< yours" in dry.stdout and "--- /dev/null\n+++ b/services/greet/new.txt" in dry.stdout
    planned = json.loads(ecoctl(eco, "upgrade", "--dry-run", "--json").stdout)
    assert [s["service"] for s in planned["services"]] == ["portfolio", "greet"]  # the core one is up to date
    assert {f["path"]: f["action"] for f in planned["services"][1]["files"]} == {
        "app.py": "merge", "settings.py": "conflict", "new.txt": "add", "notes.txt": "delete", "old.txt": "kept"}
    assert planned["dry_run"] and planned["conflicts"] == ["services/greet/settings.py"]
    assert checksum(eco / "services") == before

    up = ecoctl(eco, "upgrade", "greet")
    assert up.returncode == 1, up.stdout + up.stderr
    assert "services/greet/settings.py" in up.stderr and len(up.stderr.strip().splitlines()) == 1
    merged = (folder / "app.py").read_text()
    assert 'GREETING = "hello there"' in merged and "TIMEOUT = 30  # ours" in merged and "<<<<<<<" not in merged
    assert (folder / "settings.py").read_text() == (
        '<<<<<<< yours\nLEVEL = "debug"\n||||||| template v1\nLEVEL = "info"\n=======\n'
        'LEVEL = "warning"\n>>>>>>> template v2\nRETRIES = 3\n')
    assert (folder / "new.txt").read_text() == "new in v2\n"
    assert not (folder / "notes.txt").exists()  # deleted by the template, unchanged here
    assert (folder / "old.txt").read_text() == "old, but edited\n"  # deleted by the template, but edited
    assert "? kept     old.txt" in up.stdout and "! conflict settings.py" in up.stdout
    assert record(folder)["version"] == 2

    unresolved = ecoctl(eco, "upgrade", "greet")
    assert unresolved.returncode == 1 and "settings.py: still has conflict markers" in unresolved.stdout

    (folder / "settings.py").write_text('LEVEL = "warning"  # resolved\nRETRIES = 3\n')
    again = ecoctl(eco, "upgrade", "greet", "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)["services"][0]
    assert report["status"] == "up-to-date" and report["files"] == [] and report["conflicts"] == []
    assert "nothing to do" in ecoctl(eco, "upgrade").stdout
    plan = ecoctl(eco, "plan", "--only", "files", "--json")
    assert json.loads(plan.stdout)["notices"] == []


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org",
                             *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_template_from_a_git_repository_is_added_at_a_tag_and_upgraded_to_the_next(eco, tmp_path):
    repo = tmp_path / "greeter-template"
    write_template(repo, 1, V1)
    git(repo.parent, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    git(repo, "tag", "v1")
    write_template(repo, 2, V2)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v2")
    git(repo, "tag", "v2")
    url = f"git+file://{repo}"

    added = ecoctl(eco, "add-service", "greet", "--template", f"{url}#v1", "--no-apply")
    assert added.returncode == 0, added.stderr
    folder = eco / "services" / "greet"
    recorded = record(folder)
    assert recorded["source"] == "git" and recorded["version"] == 1 and recorded["ref"] == f"{url}#v1"
    assert recorded["commit"] == git(repo, "rev-parse", "v1^{commit}")
    assert (folder / "notes.txt").exists() and not (folder / "new.txt").exists()
    assert list((tmp_path / "cache" / "ecoctl" / "templates").iterdir())  # cloned into the cache

    app = (folder / "app.py").read_text().replace("TIMEOUT = 5", "TIMEOUT = 30  # ours")
    (folder / "app.py").write_text(app)
    up = ecoctl(eco, "upgrade", "greet", "--to", "v2")
    assert up.returncode == 0, up.stdout + up.stderr
    merged = (folder / "app.py").read_text()
    assert 'GREETING = "hello there"' in merged and "TIMEOUT = 30  # ours" in merged
    assert (folder / "settings.py").read_text() == SETTINGS_V2 and (folder / "new.txt").exists()
    recorded = record(folder)
    assert recorded["version"] == 2 and recorded["commit"] == git(repo, "rev-parse", "v2^{commit}")
    assert EcosystemFile.load(eco / "ecosystem.yaml").model.services["greet"].template == f"{url}#v2"
    assert "nothing to do" in ecoctl(eco, "upgrade", "greet").stdout

    missing = ecoctl(eco, "add-service", "other", "--template", f"{url}#v9", "--no-apply")
    assert missing.returncode == 2 and "no tag, branch or commit 'v9'" in missing.stderr


def test_a_git_template_cannot_run_code_at_render(eco, tmp_path):
    repo = tmp_path / "evil-template"
    write_template(repo, 1, {"x.txt.j2": "{{ ''.__class__.__mro__[1].__subclasses__() }}\n"})
    git(repo.parent, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    result = ecoctl(eco, "add-service", "evil", "--template", f"git+file://{repo}", "--no-apply")
    assert result.returncode == 2, result.stdout
    assert "x.txt" in result.stderr and "unsafe" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (eco / "services" / "evil").exists()


@pytest.mark.parametrize("old, new, line", [
    ("version: 1\n", "version: 1\nextra: [unclosed\n", 6),   # not YAML: the line the parser stopped at
    ("version: 1\n", "version: zero\n", 4),                   # not a version
    ("  port: 8300\n", "  port: 8300\n  2bad: 1\n", 10),        # a variable name that is no identifier
])
def test_bad_manifest_is_refused_with_file_and_line(eco, old, new, line):
    write_template(eco / "team" / "greeter", 1, V1)
    manifest = eco / "team" / "greeter" / "template.yaml"
    manifest.write_text(manifest.read_text().replace(old, new))
    result = ecoctl(eco, "add-service", "greet", "--template", "greeter", "--no-apply")
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith(f"error: {manifest}:{line}: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (eco / "services" / "greet").exists()


def test_service_without_a_record_explains_how_to_adopt_it(eco):
    added = ecoctl(eco, "add-service", "loyalty", "--no-apply")
    assert added.returncode == 0, added.stderr
    (eco / "services" / "loyalty" / ".ecoctl-template.yml").unlink()  # as rendered before records existed
    result = ecoctl(eco, "upgrade", "loyalty")
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "ecoctl upgrade loyalty --adopt-from VERSION" in result.stderr and "1, 2" in result.stderr
    assert "Traceback" not in result.stderr
    plan = ecoctl(eco, "plan", "--only", "files", "--json")
    assert any("--adopt-from" in n for n in json.loads(plan.stdout)["notices"])


HELLO_ROUTE = '''

@router.get("/hello")
async def hello(token: dict[str, Any] = Depends(claims)) -> dict[str, str]:
    """The team's own endpoint, added after rendering."""
    return {"hello": token["sub"]}
'''
HELLO_TEST = '''"""The team's own test of its own endpoint."""

from conftest import bearer


def test_hello_greets_the_token_subject(client, key):
    response = client.get("/hello", headers=bearer(key.token(sub="alice")))
    assert response.status_code == 200, response.text
    assert response.json() == {"hello": "alice"}
'''


def team_edits(folder: Path) -> None:
    """What a team does to a rendered service: a route at the end of handlers.py (whose imports and
    health check v2 changes), a line in the README (whose middle v2 changes), a test of its own."""
    handlers = folder / "loyalty" / "handlers.py"
    handlers.write_text(handlers.read_text() + HELLO_ROUTE)
    readme = folder / "README.md"
    readme.write_text("Owned by the loyalty team.\n\n" + readme.read_text())
    (folder / "tests" / "test_hello.py").write_text(HELLO_TEST)


def test_a_go_gin_3_service_upgrades_to_the_shared_build_caches_keeping_the_teams_edit(tmp_path):
    from tests.contract.subjects import upgraded_service

    def edit(folder):
        dockerfile = folder / "Dockerfile"
        dockerfile.write_text(dockerfile.read_text() + "LABEL org.example.team=rewards\n")

    folder = upgraded_service(tmp_path / "eco", "rewards", "go-gin", 3, edit=edit)
    assert record(folder)["version"] == 4
    dockerfile = (folder / "Dockerfile").read_text()
    assert "RUN --mount=type=cache,id=go-mod,target=/cache/go-mod" in dockerfile
    assert "--mount=type=cache,id=go-build,target=/cache/go-build" in dockerfile
    assert dockerfile.endswith("LABEL org.example.team=rewards\n") and "<<<<<<<" not in dockerfile


def test_python_fastapi_v1_service_upgrades_to_the_latest_and_passes_its_own_tests(tmp_path, pg, monkeypatch):
    import os

    from ecoctl.service_templates import render_service_files
    from ecoctl.template_sources import resolve
    from tests.contract.subjects import create_database, drop_database, upgraded_service

    folder = upgraded_service(tmp_path / "eco", "loyalty", "python-fastapi", 1, edit=team_edits)
    assert record(folder)["version"] == resolve("python-fastapi").template.version >= 3
    assert record(folder)["source"] == "shipped"
    # every file is the latest's, except the team's edits, which survived the merge
    fresh = render_service_files(resolve("python-fastapi").template,
                                 {"service_name": "loyalty", "port": 8080, "base_image": "python:3.12-slim"})
    differing = sorted(rel for rel, content in fresh.items() if (folder / rel).read_bytes() != content)
    assert differing == ["README.md", "loyalty/handlers.py"]
    handlers = (folder / "loyalty" / "handlers.py").read_text()
    assert "from .problems import problem" in handlers and '@router.get("/hello")' in handlers
    assert (folder / "loyalty" / "problems.py").is_file() and "<<<<<<<" not in handlers
    readme = (folder / "README.md").read_text()
    assert readme.startswith("Owned by the loyalty team.") and "RFC 9457" in readme

    # the upgraded service's own tests (v2's, plus the team's) pass against a real database
    venv, uv = tmp_path / "venv", uv_binary()
    for args in ([uv, "venv", "-q", str(venv)],
                 [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), f"{folder}[test]"]):
        done = subprocess.run(args, capture_output=True, text=True, timeout=600, env=uv_env())
        assert done.returncode == 0, done.stderr[-3000:]
    database, role, password = "upg_loyalty_db", "upg_loyalty_user", "upg-" + os.urandom(9).hex()
    create_database(pg.conninfo(), database, role, password)
    try:
        env = {"PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(tmp_path),
               "DATABASE_HOST": pg.host, "DATABASE_PORT": str(pg.port), "DATABASE_NAME": database,
               "DATABASE_USER": role, "DATABASE_PASSWORD": password}
        result = subprocess.run([str(venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-v",
                                 "-rs"], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    finally:
        drop_database(pg.conninfo(), database, role)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    assert "SKIPPED" not in report, report[-3000:]
    for name in ("test_hello_greets_the_token_subject", "test_unknown_path_is_a_404_problem",
                 "test_items_belong_to_the_token_subject", "test_token_with_bad_signature_is_refused"):
        assert f"::{name} PASSED" in report, f"{name} did not pass:\n{report[-3000:]}"
