"""What a service's record and its pristine render may make ecoctl do (issue 27, items 6 and 7):
a tampered `.ecoctl/pristine/NAME.json` (keys `/abs/path`, `../../x`) made `upgrade` delete files
anywhere and prune their folders (exit 0); a tampered `.ecoctl-template.yml` (git source, ref or
commit naming another repository) made the read-only `plan` fetch from it."""

import base64
import json
import subprocess

import pytest

from ecoctl.commands.init import init_ecosystem
from ecoctl.model import EcosystemFile
from tests.helpers import assert_refused, run_ecoctl

MANIFEST = ("name: greeter\ndescription: test\ndefault_port: 8300\nversion: {version}\n"
            "variables:\n  service_name: {{required: true}}\n  port: 8300\n")


def team_template(folder, version: int, files: dict[str, str]) -> None:
    (folder / "files").mkdir(parents=True, exist_ok=True)
    for old in (folder / "files").iterdir():
        old.unlink()
    (folder / "template.yaml").write_text(MANIFEST.format(version=version))
    for rel, text in files.items():
        (folder / "files" / rel).write_text(text)


@pytest.fixture
def eco(tmp_path, monkeypatch):
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    EcosystemFile.load(root / "ecosystem.yaml").update(lambda doc: doc.__setitem__("templates_dir", "team"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    team_template(root / "team" / "greeter", 1, {"app.py": "v1\n", "old.txt": "old\n"})
    assert run_ecoctl("add-service", "greet", "--template", "greeter", "--no-apply", cwd=root).returncode == 0
    return root


def test_pristine_renders_are_private(eco):
    assert (eco / ".ecoctl" / "pristine" / "greet.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("key", ["absolute", "dotdot", "dot", "empty-part"])
def test_a_pristine_path_outside_the_service_folder_is_refused(eco, tmp_path, key):
    victim = tmp_path / "victim" / "keep" / "precious.txt"
    victim.parent.mkdir(parents=True)
    victim.write_text("precious\n")
    rel = {"absolute": str(victim), "dotdot": "../../../victim/keep/precious.txt",
           "dot": "./old.txt", "empty-part": "sub//old.txt"}[key]
    pristine = eco / ".ecoctl" / "pristine" / "greet.json"
    document = json.loads(pristine.read_text())
    document["files"][rel] = base64.b64encode(b"precious\n").decode()
    pristine.write_text(json.dumps(document))
    team_template(eco / "team" / "greeter", 2, {"app.py": "v2\n"})  # v1 is kept nowhere but in pristine
    for command in (["upgrade", "greet"], ["upgrade", "greet", "--dry-run"]):
        line = assert_refused(run_ecoctl(*command, cwd=eco), 2, "greet.json", "not inside services/greet/")
        assert "delete" in line
    assert victim.read_text() == "precious\n" and victim.parent.is_dir()
    assert (eco / "services" / "greet" / "old.txt").exists()


def test_an_honest_pristine_render_still_drives_the_upgrade(eco):
    team_template(eco / "team" / "greeter", 2, {"app.py": "v2\n"})
    result = run_ecoctl("upgrade", "greet", cwd=eco)
    assert result.returncode == 0, result.stderr
    assert (eco / "services" / "greet" / "app.py").read_text() == "v2\n"
    assert not (eco / "services" / "greet" / "old.txt").exists()


def git(repo, *args):
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def elsewhere(tmp_path):
    """A git repository nobody named in ecosystem.yaml; its commit."""
    repo = tmp_path / "elsewhere"
    team_template(repo, 1, {"app.py": "from elsewhere\n"})
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    return repo, git(repo, "rev-parse", "HEAD")


def tamper(eco, service: str, repo, commit: str) -> None:
    record = eco / "services" / service / ".ecoctl-template.yml"
    text = record.read_text()
    lines = [line for line in text.splitlines() if not line.startswith(("source:", "ref:", "commit:"))]
    lines.insert(1, f"source: git\nref: git+file://{repo}#main\ncommit: {commit}")
    record.write_text("\n".join(lines) + "\n")


def test_plan_never_fetches_what_a_tampered_record_names(eco, tmp_path, elsewhere):
    repo, commit = elsewhere
    tamper(eco, "greet", repo, commit)
    (eco / "services" / "greet" / "app.py").unlink()  # a file to render again: the record's version is asked
    result = run_ecoctl("plan", "--only", "files", cwd=eco)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "cache" / "ecoctl").exists(), "plan fetched the repository the record names"


def test_upgrade_does_not_fetch_another_repository_than_ecosystem_yaml_names(eco, tmp_path, elsewhere):
    repo, commit = elsewhere
    mine = tmp_path / "mine"
    team_template(mine, 1, {"app.py": "v1\n", "old.txt": "old\n"})
    git(tmp_path, "init", "-q", "-b", "main", str(mine))
    git(mine, "add", "-A")
    git(mine, "commit", "-q", "-m", "v1")
    git(mine, "tag", "v1")
    assert run_ecoctl("add-service", "gitty", "--template", f"git+file://{mine}#v1", "--no-apply",
                      cwd=eco).returncode == 0
    mirrors = set((tmp_path / "cache" / "ecoctl" / "templates").iterdir())
    tamper(eco, "gitty", repo, commit)
    result = run_ecoctl("upgrade", "gitty", "--dry-run", cwd=eco)
    assert "Traceback" not in result.stderr
    assert set((tmp_path / "cache" / "ecoctl" / "templates").iterdir()) == mirrors, "fetched the record's repository"


@pytest.mark.parametrize("commit", ["'https://evil.example/x'", "'--upload-pack=touch /tmp/x'", "12345"])
def test_a_record_commit_must_be_a_commit_id(eco, commit):
    record = eco / "services" / "greet" / ".ecoctl-template.yml"
    record.write_text(record.read_text().replace("commit:", f"commit: {commit}\nx_commit:"))
    record.write_text(record.read_text().replace("x_commit:\n", ""))
    assert_refused(run_ecoctl("plan", "--only", "files", cwd=eco), 2, ".ecoctl-template.yml", "commit")
