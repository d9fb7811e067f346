"""Input checked before anything is written (issue 12): hosts, redirect URIs, ports, hostile YAML,
non-UTF-8 files, markup in user text, symlinked .env, stale temp files."""

import os
import time

import pytest

from ecoctl.commands.init import init_ecosystem
from ecoctl.support.atomic import write_atomic
from tests.helpers import new_ecosystem_dir, run_ecoctl, snapshot


@pytest.fixture
def root(tmp_path):
    return new_ecosystem_dir(tmp_path)


@pytest.mark.parametrize("host", ["1.2.3.4; rm -rf /", "a b", "'quoted'", "x" * 300, "-lead.example",
                                  "under_score.example", "1.2.3.999", ""])
def test_a_bad_host_is_refused_before_anything_is_written(root, host):
    before = snapshot(root)
    result = run_ecoctl("add-service", "edge", "--pattern", "external", "--host", host, "--no-apply", cwd=root)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--host" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert len(result.stderr) < 400  # at most ~80 characters of the value
    assert snapshot(root) == before


@pytest.mark.parametrize("host", ["metrics.internal", "10.0.0.7", "fd00::7", "db-1.example.com."])
def test_a_good_host_is_accepted(root, host):
    result = run_ecoctl("add-service", "edge", "--pattern", "external", "--host", host, "--no-apply", cwd=root)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("uri", ["javascript:alert(1)", "data:text/html,x", "file:///etc/passwd",
                                 "JavaScript:alert(1)", "http://", "http://a b/cb", "https://x.example/cb#frag",
                                 "myapp:/cb", "vbscript:x"])
def test_a_bad_redirect_uri_is_refused(root, uri):
    before = snapshot(root)
    result = run_ecoctl("add-service", "edge", "--redirect-uri", uri, "--no-apply", cwd=root)
    assert result.returncode == 2 and "--redirect-uri" in result.stderr, result.stdout + result.stderr
    assert snapshot(root) == before


@pytest.mark.parametrize("uri", ["http://127.0.0.1:8080/callback", "https://app.example.com/cb",
                                 "com.example.app:/oauth2redirect", "http://[::1]:8080/cb"])
def test_a_good_redirect_uri_is_accepted(root, uri):
    result = run_ecoctl("add-service", "edge", "--redirect-uri", uri, "--no-apply", cwd=root)
    assert result.returncode == 0, result.stderr


def test_redirect_uri_in_ecosystem_yaml_is_checked_at_load(root):
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text() + "  edge:\n    port: 8300\n    redirect_uris: ['javascript:alert(1)']\n")
    result = run_ecoctl("plan", cwd=root)
    assert result.returncode == 2 and "ecosystem.yaml:" in result.stderr and "javascript" in result.stderr


def test_port_zero_is_refused_not_replaced_by_the_default(root):
    result = run_ecoctl("add-service", "edge", "--port", "0", "--no-apply", cwd=root)
    assert result.returncode == 2 and "--port 0" in result.stderr


@pytest.mark.parametrize("value", ["true", "'8300'", "8300.0", "0", "70000"])
def test_a_port_in_ecosystem_yaml_must_be_a_strict_integer(root, value):
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text() + f"  edge:\n    port: {value}\n")
    result = run_ecoctl("plan", cwd=root)
    assert result.returncode == 2, result.stdout + result.stderr
    line = len(spec.read_text().splitlines())
    assert f"ecosystem.yaml:{line}:" in result.stderr and "services.edge.port" in result.stderr


def test_two_services_on_one_port_are_refused_at_load(root):
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text() + "  edge:\n    port: 8000\n")  # portfolio's port
    result = run_ecoctl("plan", cwd=root)
    line = len(spec.read_text().splitlines())
    assert result.returncode == 2 and f"ecosystem.yaml:{line}: services.edge.port" in result.stderr
    assert "portfolio" in result.stderr


def test_a_service_on_the_postgres_port_is_refused_at_load(root):
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text() + "  edge:\n    port: 5432\n")
    result = run_ecoctl("plan", cwd=root)
    assert result.returncode == 2 and "postgres" in result.stderr and "services.edge.port" in result.stderr


def test_a_long_bad_value_is_cut_in_the_message(root):
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text().replace("runtime: local", "runtime: " + "x" * 5000))
    result = run_ecoctl("plan", cwd=root)
    assert result.returncode == 2 and len(result.stderr) < 400, result.stderr


def test_a_huge_file_is_refused_by_its_size(root):
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text() + ("# comment\n" * 200_000))
    result = run_ecoctl("plan", cwd=root, timeout=60)
    assert result.returncode == 2 and "larger than" in result.stderr


@pytest.mark.parametrize("name", ["ecosystem.yaml", ".env"])
def test_a_non_utf8_file_is_one_line_and_exit_2(root, name):
    path = root / name
    path.write_bytes(path.read_bytes() + b"# caf\xe9\n")
    result = run_ecoctl("plan", cwd=root)
    assert result.returncode == 2, result.stderr
    assert "not UTF-8" in result.stderr and name in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_user_text_is_printed_literally(tmp_path):
    result = run_ecoctl("--dir", str(tmp_path / "eco[red]x"), "plan", cwd=tmp_path)
    assert result.returncode == 2 and "eco[red]x" in result.stderr, result.stderr
    init_ecosystem(tmp_path / "eco", runtime="local", without=("web",))
    writes = run_ecoctl("add-service", "edge", "--writes", "portfolio", cwd=tmp_path / "eco")
    assert "reads: [portfolio]" in writes.stderr, writes.stderr
    spec = tmp_path / "eco" / "ecosystem.yaml"
    spec.write_text(spec.read_text().replace("name: ", "name: Bad_", 1))
    named = run_ecoctl("plan", cwd=tmp_path / "eco")
    assert "[a-z][a-z0-9-]{0,39}" in named.stderr, named.stderr


def test_init_prints_a_directory_with_brackets_literally(tmp_path):
    result = run_ecoctl("init", str(tmp_path / "eco[red]x"), "--runtime", "local", "--without", "web", cwd=tmp_path)
    assert result.returncode == 0 and "eco[red]x" in result.stdout, result.stdout + result.stderr


def test_a_symlinked_env_is_written_through(root, tmp_path):
    secrets = tmp_path / "vault" / "eco.env"
    secrets.parent.mkdir()
    os.replace(root / ".env", secrets)
    (root / ".env").symlink_to(secrets)
    result = run_ecoctl("add-service", "edge", "--no-apply", cwd=root)  # generates EDGE_DB_PASSWORD
    assert result.returncode == 0, result.stderr
    assert (root / ".env").is_symlink() and "EDGE_DB_PASSWORD=" in secrets.read_text()
    assert secrets.stat().st_mode & 0o777 == 0o600


def test_stale_temp_files_of_a_killed_write_are_cleaned(tmp_path):
    stale = tmp_path / ".compose.yaml.ecoctl-k3j_x9a2.tmp"
    fresh = tmp_path / ".compose.yaml.ecoctl-ab12cd34.tmp"  # another writer, right now
    foreign = tmp_path / ".notes.tmp"
    for path in (stale, fresh, foreign):
        path.write_text("half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(foreign, (old, old))
    write_atomic(tmp_path / "prometheus.yml", "x")
    assert not stale.exists() and fresh.exists() and foreign.exists()


def test_an_external_service_may_use_a_core_port_on_its_own_host(root):
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text() + "  edge:\n    port: 5432\n    pattern: external\n    host: 10.0.0.7\n"
                    "  edge-two:\n    port: 5432\n    pattern: external\n    host: 10.0.0.7\n")
    result = run_ecoctl("plan", "--only", "files", cwd=root)
    line = len(spec.read_text().splitlines()) - 2
    assert result.returncode == 2 and f"ecosystem.yaml:{line}: services.edge-two.port" in result.stderr, result.stderr
    assert "'edge'" in result.stderr


def test_a_new_folder_is_written_whole_with_its_modes_whatever_the_umask(tmp_path):
    from ecoctl.support.atomic import write_tree

    previous = os.umask(0o077)
    try:
        assert write_tree(tmp_path / "svc", {"a.txt": b"a", "src/pkg/b.py": b"b", "src/c.py": b"c"})
    finally:
        os.umask(previous)
    folder = tmp_path / "svc"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == \
        ["a.txt", "src", "src/c.py", "src/pkg", "src/pkg/b.py"]
    assert (folder / "src/pkg/b.py").read_bytes() == b"b"
    assert {oct(p.stat().st_mode & 0o777) for p in folder.rglob("*") if p.is_file()} == {"0o644"}
    assert {oct(p.stat().st_mode & 0o777) for p in [folder, *folder.rglob("*")] if p.is_dir()} == {"0o755"}
    assert [p.name for p in tmp_path.iterdir()] == ["svc"]  # no staging folder left


def test_an_existing_folder_is_not_written_by_write_tree(tmp_path):
    from ecoctl.support.atomic import write_tree

    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "mine.txt").write_text("mine")
    assert not write_tree(tmp_path / "svc", {"mine.txt": b"theirs", "new.txt": b"x"})
    assert [p.name for p in (tmp_path / "svc").iterdir()] == ["mine.txt"]
    assert (tmp_path / "svc" / "mine.txt").read_text() == "mine"


def test_a_failed_tree_write_leaves_nothing(tmp_path):
    from ecoctl.support.atomic import write_tree

    with pytest.raises(OSError):  # "a" is a file, then a folder: the second write cannot happen
        write_tree(tmp_path / "svc", {"a": b"file", "a/b": b"under it"})
    assert list(tmp_path.iterdir()) == []


def test_the_staging_folder_of_a_killed_tree_write_is_cleaned_by_the_next_process(tmp_path):
    import subprocess
    import sys

    stale = tmp_path / ".svc.ecoctl-ab12_x9z.tmp"
    stale.mkdir()
    (stale / "half.txt").write_text("half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    probe = f"from ecoctl.support.atomic import write_tree; write_tree({str(tmp_path / 'other')!r}, {{'x': b'x'}})"
    subprocess.run([sys.executable, "-c", probe], check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]


def test_a_folder_removed_after_a_write_is_made_again_for_the_next(tmp_path):
    import shutil

    write_atomic(tmp_path / "gone" / "one.txt", "1")
    shutil.rmtree(tmp_path / "gone")
    write_atomic(tmp_path / "gone" / "two.txt", "2")
    assert (tmp_path / "gone" / "two.txt").read_text() == "2"
