"""The whole new-service flow through the real CLI: real PostgreSQL, the Authentik double over HTTP,
real files. (No container is started: the stack is not running, so starting is reported pending.)"""

import hashlib
import json
import shutil
from pathlib import Path

import psycopg
import pytest

from ecoctl.support.envfile import EnvFile
from tests.helpers import free_port
from ecoctl.commands.init import init_ecosystem
from tests.authentik_fixtures import authentik_double, authentik_double_server  # noqa: F401
from tests.helpers import point_ecosystem_at, run_ecoctl


def client_id(root: Path, service: str) -> str:
    """SERVICE's client_id in Authentik (init recorded a per-ecosystem prefix)."""
    from ecoctl import contract
    from ecoctl.workspace import Workspace

    return contract.client_id(Workspace(root).ecosystem, service)


@pytest.fixture
def ecosystem(tmp_path, pg, authentik_double):  # noqa: F811
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    point_ecosystem_at(root, postgres_port=pg.port, postgres_password=pg.password,
                       authentik_url=authentik_double.base_url, authentik_token=authentik_double.token,
                       prometheus_port=free_port())
    return root


def ecoctl(root: Path, *args: str):
    return run_ecoctl(*args, cwd=root)


def tree_checksum(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def can_connect(pg, dbname: str, user: str, password: str) -> bool:
    try:
        psycopg.connect(pg.conninfo(dbname=dbname, user=user, password=password)).close()
        return True
    except psycopg.OperationalError:
        return False


def test_add_plan_remove(ecosystem, pg, authentik_double):  # noqa: F811
    root = ecosystem
    added = ecoctl(root, "add-service", "loyalty", "--reads", "portfolio", "--json")
    assert added.returncode == 0, added.stderr
    report = json.loads(added.stdout)
    assert [p["system"] for p in report["pending"]] == ["runtime"]
    texts = {change["text"].split(" (")[0] for change in report["applied"]}
    assert {"+ create database loyalty_db", "+ create scrape job loyalty", "+ create dashboard loyalty"} <= texts

    env = EnvFile(root / ".env")
    password = env.get("LOYALTY_DB_PASSWORD")
    assert can_connect(pg, "loyalty_db", "loyalty_user", password)
    assert not can_connect(pg, "loyalty_db", "loyalty_user", password + "x")
    assert can_connect(pg, "portfolio_db", "loyalty_user", password)  # reads: [portfolio]
    assert authentik_double.provider(client_id(root, "loyalty"))["client_secret"] == env.get("LOYALTY_OIDC_CLIENT_SECRET")
    assert len(env.get("LOYALTY_OIDC_CLIENT_SECRET")) >= 40
    assert (root / "services/loyalty/pyproject.toml").exists()
    assert "job_name: loyalty" in (root / "monitoring/prometheus/prometheus.yml").read_text()
    assert (root / "monitoring/grafana/dashboards/loyalty.json").exists()
    assert "loyalty:" in (root / "compose.yaml").read_text()

    plan = ecoctl(root, "plan", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    again = ecoctl(root, "add-service", "loyalty", "--reads", "portfolio", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["applied"] == []

    with psycopg.connect(pg.conninfo(dbname="loyalty_db", user="loyalty_user", password=password)) as conn:
        conn.execute("create table points (id int)")
        conn.execute("insert into points values (1)")

    removed = ecoctl(root, "remove-service", "loyalty", "--json")
    assert removed.returncode == 0, removed.stderr
    with psycopg.connect(pg.conninfo()) as admin:
        assert admin.execute("select 1 from pg_database where datname = 'loyalty_db'").fetchone()
        assert not admin.execute("select 1 from pg_roles where rolname = 'loyalty_user'").fetchone()
    assert authentik_double.provider(client_id(root, "loyalty")) is None
    assert "job_name: loyalty" not in (root / "monitoring/prometheus/prometheus.yml").read_text()
    assert not (root / "monitoring/grafana/dashboards/loyalty.json").exists()
    assert "ecoctl.service: loyalty" not in (root / "compose.yaml").read_text()
    assert ecoctl(root, "plan", "--detailed-exitcode").returncode == 0


def test_no_apply_writes_files_only(ecosystem, pg, authentik_double):  # noqa: F811
    root = ecosystem
    result = ecoctl(root, "add-service", "rewards", "--no-apply", "--json")
    assert result.returncode == 0, result.stderr
    assert {p["system"] for p in json.loads(result.stdout)["pending"]} == {"postgres", "authentik", "runtime"}
    assert (root / "services/rewards").is_dir() and "REWARDS_DB_PASSWORD" in EnvFile(root / ".env")
    assert "job_name: rewards" in (root / "monitoring/prometheus/prometheus.yml").read_text()
    with psycopg.connect(pg.conninfo()) as admin:
        assert not admin.execute("select 1 from pg_roles where rolname = 'rewards_user'").fetchone()
    assert authentik_double.provider(client_id(root, "rewards")) is None
    plan = ecoctl(root, "plan", "--json", "--detailed-exitcode")
    assert plan.returncode == 2
    assert "+ create role rewards_user" in [c["text"].split(" (")[0] for c in json.loads(plan.stdout)["changes"]]
    applied = ecoctl(root, "apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    assert ecoctl(root, "plan", "--detailed-exitcode").returncode == 0
    assert ecoctl(root, "remove-service", "rewards", "--drop-data", "--yes").returncode == 0
    with psycopg.connect(pg.conninfo()) as admin:
        assert not admin.execute("select 1 from pg_database where datname = 'rewards_db'").fetchone()


@pytest.fixture(scope="module")
def bad_input_base(tmp_path_factory):
    root = tmp_path_factory.mktemp("base") / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    assert ecoctl(root, "add-service", "taken", "--port", "8100", "--no-apply").returncode == 0
    (root / "services" / "legacy").mkdir()
    (root / "services" / "legacy" / "app.py").write_text("# someone's own service\n")
    return root


@pytest.mark.parametrize("args", [
    ["Loyalty"], ["1x"], ["a"], ["x" * 60], ["postgres"], ["portfolio"], ["x;drop"],
    ["legacy"], ["other", "--port", "8100"], ["other", "--port", "5432"], ["other", "--reads", "ghost"],
    ["other", "--writes", "portfolio"], ["other", "--template", "no-such-template"],
    ["other", "--pattern", "external"],
])
def test_bad_input_is_refused_and_changes_nothing(tmp_path, bad_input_base, args):
    root = tmp_path / "eco"
    shutil.copytree(bad_input_base, root)
    before = tree_checksum(root)
    result = ecoctl(root, "add-service", *args, "--no-apply")
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert tree_checksum(root) == before
