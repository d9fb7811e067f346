"""Backups under the docker runtime, against a real engine: pg_dump and pg_restore run inside the
stack's PostgreSQL container (its own version; nothing installed on the host). Only PostgreSQL is
started; the service is `external` (its database lives in the stack, its process elsewhere), so
the swap restarts nothing.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import psycopg
import pytest

from ecoctl.workspace import Workspace
from tests.helpers import DOCKER_TEST_IMAGES, docker_engine_problem, free_port, run_ecoctl

ENGINE_PROBLEM = docker_engine_problem()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(ENGINE_PROBLEM is not None, reason=ENGINE_PROBLEM or "")]


@pytest.fixture(scope="module")
def database_stack(tmp_path_factory):
    from ecoctl.commands.init import init_ecosystem
    from ecoctl.runtimes.docker import DockerRuntime

    root = tmp_path_factory.mktemp("backup-docker") / "eco"
    init_ecosystem(root, runtime="docker", without=("web",))
    port = free_port()

    def configure(document):
        document["name"] = f"bk{secrets.token_hex(3)}"
        document["images"] = dict(DOCKER_TEST_IMAGES)
        document["core"]["postgres"]["port"] = port
        document["core"]["authentik"]["url"] = "http://127.0.0.1:1"
        document["services"]["ledger"] = {"port": free_port(), "pattern": "external", "host": "10.0.0.7"}

    Workspace(root).ecosystem_file.update(configure)
    (root / "compose.yaml").unlink()
    init_ecosystem(root, force=True)
    runtime = DockerRuntime(Workspace(root))
    try:
        runtime.start_postgres()
        applied = run_ecoctl("apply", "--yes", "--only", "postgres", cwd=root)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        yield root, port
    finally:
        runtime.stop(remove_volumes=True)
        runtime.close()


def ledger(root: Path, port: int) -> psycopg.Connection:
    password = Workspace(root).env.get("LEDGER_DB_PASSWORD")
    return psycopg.connect(host="127.0.0.1", port=port, user="ledger_user", password=password,
                           dbname="ledger_db", autocommit=True)


def test_backup_and_restore_run_inside_the_postgres_container(database_stack):
    root, port = database_stack
    with ledger(root, port) as conn:
        conn.execute("create table entries (id serial primary key, amount int)")
        conn.execute("insert into entries (amount) select g from generate_series(1, 300) g")
        server = conn.execute("show server_version").fetchone()[0].split()[0]
        before = conn.execute("select md5(string_agg(e::text, ',' order by id)) from entries e").fetchone()
    done = run_ecoctl("backup", "ledger", "--json", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    dump = Path(json.loads(done.stdout)["backups"][0]["file"])
    manifest = json.loads(dump.with_suffix(".json").read_text())
    assert manifest["server_version"] == server
    assert manifest["pg_dump_version"].split()[-1].split(".")[0] == server.split(".")[0]  # the container's own
    with ledger(root, port) as conn:
        conn.execute("delete from entries")
    restored = run_ecoctl("restore", "ledger", str(dump), cwd=root)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "with the postgres container" in restored.stderr
    with ledger(root, port) as conn:
        assert conn.execute("select md5(string_agg(e::text, ',' order by id)) from entries e").fetchone() == before
    assert run_ecoctl("plan", "--detailed-exitcode", "--only", "postgres", cwd=root).returncode == 0
