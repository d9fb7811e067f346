"""A template renders its own files only (issue 27, item 5): folder templates (`--template PATH`,
`templates_dir`) followed symlinks, so `/etc/shadow` or another ecosystem's `.env` landed in the
service's files and its pristine render; a git template's link out of the tree ended in
`unexpected LinkOutsideDestinationError ... please report it`. Both are one clear line, and
nothing is written."""

import os
import subprocess

import pytest

from tests.helpers import assert_refused, new_ecosystem_dir, run_ecoctl

MANIFEST = "name: linky\ndescription: links\ndefault_port: 8400\nversion: 1\nvariables:\n  service_name: {required: true}\n"


@pytest.fixture
def eco(tmp_path):
    return new_ecosystem_dir(tmp_path)


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "other" / ".env"
    path.parent.mkdir()
    path.write_text("POSTGRES_PASSWORD=the-other-ecosystems-secret\n")
    path.chmod(0o600)
    return path


def folder_template(folder, links: dict[str, str]) -> None:
    (folder / "files").mkdir(parents=True)
    (folder / "template.yaml").write_text(MANIFEST)
    (folder / "files" / "app.py").write_text("print('hi')\n")
    for rel, target in links.items():
        os.symlink(target, folder / "files" / rel)


def nothing_written(eco, service: str) -> None:
    assert not (eco / "services" / service).exists()
    assert not (eco / ".ecoctl" / "pristine" / f"{service}.json").exists()
    assert "the-other-ecosystems-secret" not in "".join(
        path.read_text(errors="replace") for path in eco.rglob("*") if path.is_file() and not path.is_symlink())


@pytest.mark.parametrize("how", ["path", "team"])
def test_a_folder_template_link_that_leaves_the_template_is_refused(eco, tmp_path, secret, how):
    folder = (eco / "team" / "linky") if how == "team" else (tmp_path / "linky")
    folder_template(folder, {"settings.env": str(secret)})
    if how == "team":
        spec = eco / "ecosystem.yaml"
        spec.write_text(spec.read_text() + "templates_dir: team\n")
    result = run_ecoctl("add-service", "leak", "--template", "linky" if how == "team" else str(folder),
                        "--no-apply", cwd=eco)
    assert_refused(result, 2, "settings.env", "outside the template", str(secret))
    nothing_written(eco, "leak")


def test_a_files_folder_that_is_a_link_out_is_refused(eco, tmp_path, secret):
    folder = tmp_path / "linky"
    folder.mkdir()
    (folder / "template.yaml").write_text(MANIFEST)
    os.symlink(secret.parent, folder / "files")
    result = run_ecoctl("add-service", "leak", "--template", str(folder), "--no-apply", cwd=eco)
    assert_refused(result, 2, "outside the template")
    nothing_written(eco, "leak")


def test_a_link_already_rendered_is_refused_by_plan(eco, tmp_path, secret):
    """A template that gains a link after a service was made from it: plan renders a missing file again."""
    folder = tmp_path / "linky"
    folder_template(folder, {})
    assert run_ecoctl("add-service", "leak", "--template", str(folder), "--no-apply", cwd=eco).returncode == 0
    (folder / "files" / "app.py").unlink()
    os.symlink(secret, folder / "files" / "app.py")
    (eco / "services" / "leak" / "app.py").unlink()
    for command in (["plan", "--only", "files"], ["apply", "--only", "files", "--yes"]):
        assert_refused(run_ecoctl(*command, cwd=eco), 2, "outside the template")
    assert not (eco / "services" / "leak" / "app.py").exists()


def test_links_inside_the_template_still_work(eco, tmp_path):
    folder = tmp_path / "linky"
    folder_template(folder, {"main.py": "app.py"})
    result = run_ecoctl("add-service", "fine", "--template", str(folder), "--no-apply", cwd=eco)
    assert result.returncode == 0, result.stderr
    assert (eco / "services" / "fine" / "main.py").read_text() == "print('hi')\n"


def git(repo, *args):
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_git_template_link_that_leaves_the_tree_is_one_clear_line(eco, tmp_path, secret):
    repo = tmp_path / "linky-git"
    folder_template(repo, {"settings.env": str(secret)})
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v1")
    result = run_ecoctl("add-service", "leak", "--template", f"git+file://{repo}", "--no-apply", cwd=eco,
                        env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    line = assert_refused(result, 2, "git template", "settings.env", "leaves the template")
    assert "unexpected" not in line and "report" not in line
    nothing_written(eco, "leak")
