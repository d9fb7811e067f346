"""remove-service X keeps services/X/ and X's database; add-service X re-attaches both (issue 12).
Real PostgreSQL, real files, the real CLI (local runtime: no Authentik, the stack is not running)."""

import json

import psycopg
import pytest

from ecoctl.commands.init import init_ecosystem
from ecoctl.model import EcosystemFile
from ecoctl.support.envfile import EnvFile
from tests.helpers import free_port, point_ecosystem_at, run_ecoctl


@pytest.fixture
def root(tmp_path, pg):
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    point_ecosystem_at(root, postgres_port=pg.port, postgres_password=pg.password, prometheus_port=free_port())
    return root


def test_re_adding_a_removed_service_re_attaches_its_code_and_data(root, pg):
    added = run_ecoctl("add-service", "rewards", "--port", "8310", cwd=root)
    assert added.returncode == 0, added.stdout + added.stderr
    password = EnvFile(root / ".env").get("REWARDS_DB_PASSWORD")
    with psycopg.connect(pg.conninfo(dbname="rewards_db", user="rewards_user", password=password)) as conn:
        conn.execute("create table points (id int)")
        conn.execute("insert into points values (42)")
    app = root / "services/rewards/rewards/main.py"
    own_code = app.read_text() + "\n# the team's own change\n"
    app.write_text(own_code)

    removed = run_ecoctl("remove-service", "rewards", cwd=root)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert (root / "services/rewards/.ecoctl-service.json").exists()

    again = run_ecoctl("add-service", "rewards", "--json", cwd=root)  # no --port: the recorded one
    assert again.returncode == 0, again.stdout + again.stderr
    assert any("re-attached" in note for note in json.loads(again.stdout)["notes"])
    assert app.read_text() == own_code
    assert not (root / "services/rewards/.ecoctl-service.json").exists()
    assert EcosystemFile.load(root / "ecosystem.yaml").model.services["rewards"].port == 8310
    password = EnvFile(root / ".env").get("REWARDS_DB_PASSWORD")
    with psycopg.connect(pg.conninfo(dbname="rewards_db", user="rewards_user", password=password)) as conn:
        assert conn.execute("select id from points").fetchall() == [(42,)]
        conn.execute("insert into points values (43)")  # its own table again
    assert run_ecoctl("plan", "--detailed-exitcode", cwd=root).returncode == 0
    assert run_ecoctl("remove-service", "rewards", "--drop-data", "--delete-files", "--yes", cwd=root).returncode == 0


def test_a_rendered_folder_without_a_record_is_re_attached_but_foreign_code_is_not(root):
    assert run_ecoctl("add-service", "ledger", "--port", "8320", "--no-apply", cwd=root).returncode == 0
    spec = root / "ecosystem.yaml"
    document = EcosystemFile.load(spec)
    document.update(lambda doc: doc["services"].pop("ledger"))  # removed by hand, no record
    assert run_ecoctl("add-service", "ledger", "--port", "8320", "--no-apply", cwd=root).returncode == 0

    (root / "services/legacy").mkdir()
    (root / "services/legacy/app.py").write_text("# someone's own service\n")
    refused = run_ecoctl("add-service", "legacy", "--no-apply", cwd=root)
    assert refused.returncode == 2 and "services/legacy/ exists" in refused.stderr
    assert (root / "services/legacy/app.py").read_text() == "# someone's own service\n"
