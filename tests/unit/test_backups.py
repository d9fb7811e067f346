"""Backups without a server: the folder's manifests, checks and retention (ecoctl.backups), which
pg_dump each runtime runs (Runtime.postgres_tool: the command line built), and the schedule lines."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ecoctl import backups
from ecoctl.backups import Manifest
from ecoctl.commands.init import init_ecosystem
from ecoctl.errors import EcoctlError, UsageError
from ecoctl.runtimes import get_runtime, postgres_tools
from ecoctl.workspace import Workspace


def manifest(service="loyalty", file="loyalty-20261202T031700Z.dump", data=b"archive", created="2026-12-02T03:17:00Z"):
    import hashlib

    return Manifest(service, f"{service}_db", "demo", file, hashlib.sha256(data).hexdigest(), len(data), created,
                    "16.4", "pg_dump (PostgreSQL) 16.4", "0.1.0", ["public.points"])


def write_backup(folder: Path, stamp: str, n: int = 1, data: bytes = b"archive", created: str | None = None) -> Path:
    name = f"loyalty-{stamp}.dump" if n == 1 else f"loyalty-{stamp}-{n}.dump"
    dump = folder / name
    dump.write_bytes(data)
    backups.write_manifest(manifest(file=name, data=data, created=created or "2026-12-02T03:17:00Z"), dump)
    return dump


def test_verify_accepts_a_whole_backup_of_the_service(tmp_path):
    dump = write_backup(tmp_path, "20261202T031700Z")
    assert backups.verify(dump, "loyalty", "loyalty_db").tables == ["public.points"]
    assert backups.dump_of(dump.with_suffix(".json")) == dump


@pytest.mark.parametrize("damage, error, message", [
    (lambda dump: dump.write_bytes(b"arch"), EcoctlError, "is damaged: 4 bytes instead of 7 (truncated?)"),
    (lambda dump: dump.write_bytes(b"ARCHIVE"), EcoctlError, "is damaged: its sha256 differs from the manifest's"),
    (lambda dump: dump.with_suffix(".json").unlink(), UsageError, "no such manifest beside the dump"),
    (lambda dump: dump.with_suffix(".json").write_text("{"), UsageError, "not a manifest of `ecoctl backup`"),
    (lambda dump: dump.with_suffix(".json").write_text('{"format": "ecoctl-backup/1"}'), UsageError,
     "a manifest with missing fields"),
    (lambda dump: dump.unlink(), UsageError, "no such backup file"),
])
def test_verify_refuses_a_damaged_or_undescribed_file(tmp_path, damage, error, message):
    dump = write_backup(tmp_path, "20261202T031700Z")
    damage(dump)
    with pytest.raises(error) as raised:
        backups.verify(dump, "loyalty", "loyalty_db")
    assert message in str(raised.value) and type(raised.value) is error


def test_verify_refuses_another_services_backup_and_a_manifest_of_another_file(tmp_path):
    dump = write_backup(tmp_path, "20261202T031700Z")
    with pytest.raises(UsageError, match=r"is a backup of loyalty \(loyalty_db\), not of portfolio"):
        backups.verify(dump, "portfolio", "portfolio_db")
    other = tmp_path / "loyalty-20261203T031700Z.dump"
    other.write_bytes(b"archive")
    dump.with_suffix(".json").rename(other.with_suffix(".json"))
    with pytest.raises(UsageError, match="describes loyalty-20261202T031700Z.dump, not loyalty-20261203"):
        backups.verify(other, "loyalty", "loyalty_db")


def test_prune_keeps_the_newest_complete_backups_manifest_first(tmp_path):
    old = write_backup(tmp_path, "20261201T031700Z", created="2026-12-01T03:17:00Z")
    same_second = [write_backup(tmp_path, "20261202T031700Z", n) for n in (1, 2, 3)]
    no_manifest = tmp_path / "loyalty-20261130T000000Z.dump"
    no_manifest.write_bytes(b"half")
    found = [backup.dump for backup in backups.complete_backups(tmp_path, "loyalty")]
    assert found == [same_second[2], same_second[1], same_second[0], old]
    assert backups.prune(tmp_path, "loyalty", 2) == [same_second[0], old]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [no_manifest.name] + [p.name for d in same_second[1:] for p in (d, d.with_suffix(".json"))])


def test_publish_never_replaces_a_backup(tmp_path):
    first = write_backup(tmp_path, "20261202T031700Z")
    tmp = tmp_path / ".loyalty-20261202T031700Z.dump.abcdefgh.tmp"
    tmp.write_bytes(b"newer")
    final = backups.publish(tmp, tmp_path, "loyalty", "20261202T031700Z")
    assert final.name == "loyalty-20261202T031700Z-2.dump" and first.read_bytes() == b"archive"
    assert not tmp.exists() and final.read_bytes() == b"newer"


def test_a_name_retention_freed_in_the_same_second_is_not_reused(tmp_path):
    """Four backups in one second with --keep 2: the fourth must not take the first's freed name
    (it would sort as the oldest and be pruned at once)."""
    stamp = "20261202T031700Z"
    for _ in range(3):
        tmp = tmp_path / f".loyalty-{stamp}.dump.x.tmp"
        tmp.write_bytes(b"archive")
        dump = backups.publish(tmp, tmp_path, "loyalty", stamp)
        backups.write_manifest(manifest(file=dump.name, data=b"archive"), dump)
        backups.prune(tmp_path, "loyalty", 2)
    tmp = tmp_path / f".loyalty-{stamp}.dump.x.tmp"
    tmp.write_bytes(b"newest")
    newest = backups.publish(tmp, tmp_path, "loyalty", stamp)
    assert newest.name == f"loyalty-{stamp}-4.dump"
    backups.write_manifest(manifest(file=newest.name, data=b"newest"), newest)
    backups.prune(tmp_path, "loyalty", 2)
    assert newest.exists() and [b.dump.name for b in backups.complete_backups(tmp_path, "loyalty")] == [
        f"loyalty-{stamp}-4.dump", f"loyalty-{stamp}-3.dump"]


def test_the_backup_folder_is_private(tmp_path):
    folder = tmp_path / "b" / "loyalty"
    os.umask(0o022)
    backups.private_folder(folder)
    assert folder.stat().st_mode & 0o777 == 0o700
    folder.chmod(0o755)
    backups.private_folder(folder)  # an existing folder is made private again
    assert folder.stat().st_mode & 0o777 == 0o700
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="file: not a folder: give --to a folder for the backups"):
        backups.private_folder(tmp_path / "file")
    with pytest.raises(EcoctlError, match=r"cannot make a private folder for the backups there \(Not a directory\)"):
        backups.private_folder(tmp_path / "file" / "below")


def workspace(tmp_path, runtime: str) -> Workspace:
    root = tmp_path / "eco"
    init_ecosystem(root, runtime=runtime, without=("web",))
    return Workspace(root)


def test_docker_runs_the_tools_inside_the_postgres_container(tmp_path):
    ws = workspace(tmp_path, "docker")
    tool = get_runtime(ws).postgres_tool(16)
    argv = tool.argv("pg_dump", "--format=custom", "--dbname", "loyalty_db")
    at = argv.index("exec")
    assert argv[at:] == ["exec", "-T", "postgres", "pg_dump", "--username", "postgres", "--format=custom",
                         "--dbname", "loyalty_db"]
    assert argv[argv.index("--project-name") + 1] == ws.ecosystem.name
    assert ws.secret("POSTGRES_PASSWORD") not in " ".join(argv) and "PGPASSWORD" not in tool.env
    assert tool.where == "the postgres container"


def test_swarm_runs_the_tools_inside_the_running_postgres_task(tmp_path):
    ws = workspace(tmp_path, "swarm")
    runtime = get_runtime(ws)
    asked = []

    class Containers:
        def list(self, filters):
            asked.append(filters)
            return [type("Task", (), {"id": "c0ffee"})()]

    runtime._client = type("Client", (), {"containers": Containers(), "close": lambda self: None})()
    tool = runtime.postgres_tool(16)
    assert asked == [{"label": f"com.docker.swarm.service.name={ws.ecosystem.name}_postgres", "status": "running"}]
    assert tool.argv("pg_restore", "--list")[1:] == ["exec", "-i", "c0ffee", "pg_restore", "--username", "postgres",
                                                     "--list"]


def test_an_external_database_under_docker_is_reached_from_this_host(tmp_path, monkeypatch):
    ws = workspace(tmp_path, "docker")
    spec = ws.root / "ecosystem.yaml"
    spec.write_text(spec.read_text().replace("  postgres:\n", "  postgres:\n    external:\n      host: db.example.org\n"
                                             "      port: 5433\n      admin_user: admin\n      password_env: DB_ADMIN\n", 1))
    (ws.root / ".env").write_text((ws.root / ".env").read_text() + "DB_ADMIN=s3cret-admin\n")
    monkeypatch.setattr(postgres_tools, "candidates", lambda: [("a client", Path("/opt/pg16/bin"))])
    monkeypatch.setattr(postgres_tools, "major_of", lambda folder: 16)
    tool = get_runtime(Workspace(ws.root)).postgres_tool(16)
    assert tool.argv("pg_dump") == ["/opt/pg16/bin/pg_dump", "--host", "db.example.org", "--port", "5433",
                                    "--username", "admin"]
    assert tool.env["PGPASSWORD"] == "s3cret-admin" and "s3cret-admin" not in tool.argv("pg_dump")


@pytest.mark.parametrize("found, server, chosen", [
    ({"wheel": 18, "debian": 16}, 16, "debian"),  # the server's own major first
    ({"wheel": 18, "debian": 15}, 16, "wheel"),  # else a newer client (pg_dump reads older servers)
    ({"wheel": 17, "debian": 18}, 16, "debian"),  # the newest of those
    ({"debian": 15}, 16, None),  # only older ones: refused
])
def test_the_host_client_is_matched_to_the_server(tmp_path, monkeypatch, found, server, chosen):
    ws = workspace(tmp_path, "local")
    monkeypatch.setattr(postgres_tools, "candidates", lambda: [(name, Path(f"/{name}")) for name in found])
    monkeypatch.setattr(postgres_tools, "major_of", lambda folder: found[folder.name])
    if chosen is None:
        with pytest.raises(EcoctlError, match=f"no pg_dump/pg_restore for PostgreSQL {server} on this host "
                                              rf"\(found: debian 15\): `apt-get install postgresql-client-{server}`"):
            get_runtime(ws).postgres_tool(server)
        return
    assert get_runtime(ws).postgres_tool(server).bin_dir == f"/{chosen}"


def test_the_schedule_runs_this_backup_nightly(tmp_path):
    from ecoctl.commands.backup import schedule

    ws = workspace(tmp_path, "local")
    lines = schedule(ws, Path(tmp_path / "off site"), 14)
    assert lines["cron"].startswith(f"17 3 * * * cd {ws.root} && ")
    assert f" backup --to '{tmp_path / 'off site'}' --keep 14 >>" in lines["cron"]
    assert "OnCalendar=*-*-* 03:17:00" in lines["systemd_timer"] and "Persistent=true" in lines["systemd_timer"]
    assert f"WorkingDirectory={ws.root}" in lines["systemd_service"]
    assert json.dumps(lines)  # printable as JSON too
