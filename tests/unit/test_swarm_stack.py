"""The swarm stack file, rendered with no engine: what swarm gets for the same desired state."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ecoctl.runtimes.swarm_stack import render, secret_name
from ecoctl.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def workspace(tmp_path):
    from ecoctl.commands.init import init_ecosystem

    init_ecosystem(tmp_path / "eco", runtime="swarm", without=("web",))
    workspace = Workspace(tmp_path / "eco")

    def configure(document):
        document["services"]["portfolio"]["replicas"] = 2
        document["core"]["authentik"]["worker_replicas"] = 3

    workspace.ecosystem_file.update(configure)
    return Workspace(tmp_path / "eco")


ALL = {"postgres", "redis", "authentik-server", "authentik-worker", "prometheus", "portfolio"}


def test_every_service_is_dnsrr_with_host_mode_ports(workspace):
    document, _ = render(workspace, ALL, {"portfolio": "eco/portfolio:abc"}, "node-1")
    services = document["services"]
    assert set(services) == ALL | {"portfolio_edge"}
    for name, entry in services.items():
        assert entry["deploy"]["endpoint_mode"] == "dnsrr", name
        assert entry["networks"] == ["net"], name
        for port in entry.get("ports", []):
            assert port["mode"] == "host", name
    assert services["portfolio_edge"]["ports"] == [{"target": 8000, "published": 8000, "protocol": "tcp",
                                                    "mode": "host"}]
    assert "ports" not in services["portfolio"]  # replicas share the edge's port
    assert document["networks"]["net"] == {"driver": "overlay", "attachable": True}


def test_replicas_rolling_updates_and_pinned_state(workspace):
    document, _ = render(workspace, ALL, {"portfolio": "eco/portfolio:abc"}, "node-1")
    services = document["services"]
    portfolio = services["portfolio"]["deploy"]
    assert portfolio["replicas"] == 2
    assert portfolio["update_config"]["order"] == "start-first"
    assert portfolio["update_config"]["failure_action"] == "rollback"
    assert services["authentik-worker"]["deploy"]["replicas"] == 3
    for name in ("postgres", "redis", "prometheus"):
        deploy = services[name]["deploy"]
        assert deploy["replicas"] == 1 and deploy["placement"]["constraints"] == ["node.hostname == node-1"]
        assert deploy["update_config"]["order"] == "stop-first"
    assert "postgres_data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert services["prometheus"]["volumes"][0].startswith(str(workspace.root / "monitoring" / "prometheus"))


def test_secrets_are_files_never_values(workspace):
    document, secrets = render(workspace, ALL, {"portfolio": "eco/portfolio:abc"}, "node-1")
    text = json.dumps(document)
    for key, value in workspace.env.values.items():
        if key.endswith(("PASSWORD", "SECRET_KEY", "TOKEN")):
            assert value not in text, key
    portfolio = document["services"]["portfolio"]
    assert portfolio["environment"]["DATABASE_PASSWORD_FILE"] == "/run/secrets/PORTFOLIO_DB_PASSWORD"
    assert "DATABASE_PASSWORD" not in portfolio["environment"]
    assert document["services"]["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/POSTGRES_PASSWORD"
    assert document["services"]["authentik-server"]["environment"]["AUTHENTIK_SECRET_KEY"] == \
        "file:///run/secrets/AUTHENTIK_SECRET_KEY"
    name = secret_name(workspace.ecosystem.name, "PORTFOLIO_DB_PASSWORD", workspace.env.get("PORTFOLIO_DB_PASSWORD"))
    assert secrets["PORTFOLIO_DB_PASSWORD"] == name
    assert document["secrets"]["PORTFOLIO_DB_PASSWORD"] == {"external": True, "name": name}


def test_a_new_secret_value_is_a_new_name_within_dockers_limit():
    first = secret_name("eco", "LOYALTY_DB_PASSWORD", "a")
    assert first.startswith("eco_LOYALTY_DB_PASSWORD_") and first != secret_name("eco", "LOYALTY_DB_PASSWORD", "b")
    long = secret_name("e" * 40, "A_VERY_LONG_SERVICE_NAME_THAT_GOES_ON_DB_PASSWORD", "x")
    assert len(long) <= 64


def test_external_postgres_is_not_in_the_stack(workspace):
    def external(document):
        document["core"]["postgres"]["external"] = {"host": "db.example.com"}

    workspace.ecosystem_file.update(external)
    document, secrets = render(Workspace(workspace.root), ALL, {"portfolio": "eco/portfolio:abc"}, "node-1")
    assert "postgres" not in document["services"]
    assert document["services"]["portfolio"]["environment"]["DATABASE_HOST"] == "db.example.com"
    assert "POSTGRES_PASSWORD" not in secrets


def test_portfolio_settings_read_file_variables(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "templates" / "portfolio" / "files"))
    from portfolio_service.settings import Settings, SettingsError

    (tmp_path / "pw").write_text("s3cret\n")
    base = {"OIDC_ISSUER": "http://issuer/", "OIDC_CLIENT_ID": "portfolio"}
    assert Settings.from_env({**base, "DATABASE_PASSWORD_FILE": str(tmp_path / "pw")}).database_password == "s3cret"
    both = {**base, "DATABASE_PASSWORD": "plain", "DATABASE_PASSWORD_FILE": str(tmp_path / "pw")}
    assert Settings.from_env(both).database_password == "plain"
    with pytest.raises(SettingsError, match="DATABASE_PASSWORD_FILE"):
        Settings.from_env({**base, "DATABASE_PASSWORD_FILE": str(tmp_path / "missing")})


def test_template_config_reads_file_variables(tmp_path, monkeypatch):
    from ecoctl.service_templates import find_template, render_template

    render_template(find_template("python-fastapi"), tmp_path / "svc", {"service_name": "loyalty"})
    monkeypatch.syspath_prepend(str(tmp_path / "svc"))
    sys.modules.pop("loyalty", None)
    from loyalty.config import ConfigError, Settings

    (tmp_path / "pw").write_text("s3cret\n")
    base = {"OIDC_ISSUER": "http://issuer/", "OIDC_CLIENT_ID": "loyalty"}
    assert Settings.from_env({**base, "DATABASE_PASSWORD_FILE": str(tmp_path / "pw")}).database_password == "s3cret"
    with pytest.raises(ConfigError, match="DATABASE_PASSWORD_FILE"):
        Settings.from_env({**base, "DATABASE_PASSWORD_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize("state, cause", [
    ("rejected: No such image: ghcr.io/goauthentik/server:2025.12.4", "No such image: ghcr.io/goauthentik/server:2025.12.4"),
    ("failing: No such image: ghcr.io/goauthentik/server:2025.12.4", "No such image: ghcr.io/goauthentik/server:2025.12.4"),
    ("failing: no suitable node (scheduling constraints not satisfied)", "no suitable node (scheduling constraints not satisfied)"),
    ("failing: task: non-zero exit (1)", None),  # retried: its logs say why
    ("starting", None),
    ("unhealthy", None),
])
def test_a_task_swarm_cannot_start_is_told_apart_from_one_that_fails(state, cause):
    from ecoctl.runtimes.swarm_health import start_refused

    assert start_refused(state) == cause


def test_the_edge_and_postgres_tls_in_the_stack(workspace):
    """The edge's Caddyfile digest is a deploy label (a new Caddyfile rolls its task); PostgreSQL's
    TLS files are mounted from the ecosystem's CA by absolute path, its entrypoint kept."""
    document, _ = render(workspace, ALL | {"edge"}, {"portfolio": "eco/portfolio:abc"}, "node-1")
    edge, postgres = document["services"]["edge"], document["services"]["postgres"]
    digest = edge["deploy"]["labels"]["ecoctl.config"]
    assert len(digest) == 16
    assert f"{workspace.root}/.ecoctl/edge/Caddyfile:/etc/caddy/Caddyfile:ro" in edge["volumes"]
    assert {port["target"] for port in edge["ports"]} == {443, 80, 9443}
    assert postgres["entrypoint"][0] == "sh" and "ssl=on" in postgres["command"]
    assert f"{workspace.root}/.ecoctl/ca/leaves/postgres.pem:/run/ecoctl-tls/postgres.pem:ro" in postgres["volumes"]
    workspace.ecosystem_file.update(lambda document: document["services"].__setitem__("loyalty", {"port": 8101}))
    again, _ = render(Workspace(workspace.root), ALL | {"edge"}, {"portfolio": "eco/portfolio:abc"}, "node-1")
    assert again["services"]["edge"]["deploy"]["labels"]["ecoctl.config"] != digest  # /api/loyalty/ now


def test_the_pooler_in_the_stack(workspace):
    """core.postgres.pooler: the pgbouncer entry compose.yaml holds, as a stack service pinned where
    its port is published, reading the userlist folder of the ecosystem (read-only); services reach
    the database through it."""
    from ecoctl.commands.init import init_ecosystem

    workspace.ecosystem_file.update(lambda document: document["core"]["postgres"].update({"pooler": "pgbouncer"}))
    init_ecosystem(workspace.root, force=True)  # compose.yaml with the pooler's entry
    document, secrets = render(Workspace(workspace.root), ALL | {"pgbouncer"}, {"portfolio": "eco/portfolio:abc"},
                               "node-1")
    pooler = document["services"]["pgbouncer"]
    assert pooler["image"] == "ecoctl/pgbouncer:1.18"
    assert pooler["volumes"] == [f"{(workspace.root / '.ecoctl' / 'pooler').resolve()}:/run/ecoctl-pooler:ro"]
    assert pooler["ports"] == [{"target": 6432, "published": 6432, "protocol": "tcp", "mode": "host"}]
    assert pooler["deploy"]["placement"] == {"constraints": ["node.hostname == node-1"]}
    assert pooler["environment"]["DATABASES_HOST"] == "postgres"
    assert pooler["environment"]["POOL_MODE"] == "transaction" and "secrets" not in pooler
    portfolio = document["services"]["portfolio"]["environment"]
    assert (portfolio["DATABASE_HOST"], portfolio["DATABASE_PORT"]) == ("pgbouncer", "6432")
    assert "DATABASE_READ_URL" not in portfolio


def test_the_read_replica_in_the_stack(workspace):
    """core.postgres.replicas: 1 under swarm: the replica's compose entry as a stack service pinned
    to its volume's node, dnsrr, its port in host mode; the replication password a Docker secret
    file (PGPASSWORD_FILE, which its entrypoint copies into a pgpass file), never a value; readers
    get DATABASE_READ_URL with their password from a file."""
    from ecoctl import scaling
    from ecoctl.commands.init import init_ecosystem

    def configure(document):
        document["core"]["postgres"].update({"replicas": 1, "replica_port": 15433})
        document["services"]["portfolio"]["read_replica"] = True

    workspace.ecosystem_file.update(configure)
    init_ecosystem(workspace.root, force=True)  # compose.yaml with the replica's entry
    workspace = Workspace(workspace.root)
    document, secrets = render(workspace, ALL | {"postgres-replica"}, {"portfolio": "eco/portfolio:abc"}, "node-1")
    replica = document["services"]["postgres-replica"]
    assert replica["environment"] == {"PGPASSWORD_FILE": "/run/secrets/REPLICATION_PASSWORD",
                                      "PGDATA": "/var/lib/postgresql/data"}
    assert replica["secrets"] == [{"source": "REPLICATION_PASSWORD", "target": "REPLICATION_PASSWORD"}]
    assert secrets["REPLICATION_PASSWORD"].startswith(f"{workspace.ecosystem.name}_REPLICATION_PASSWORD_")
    assert replica["ports"] == [{"target": 5432, "published": 15433, "protocol": "tcp", "mode": "host"}]
    assert replica["deploy"]["endpoint_mode"] == "dnsrr" and replica["deploy"]["replicas"] == 1
    assert replica["deploy"]["placement"] == {"constraints": ["node.hostname == node-1"]}
    assert replica["volumes"] == ["postgres_replica_data:/var/lib/postgresql/data"]
    assert "depends_on" not in replica  # swarm has none: the entrypoint waits for the primary
    assert f"export PGPASSFILE={scaling.REPLICA_PASSFILE}" in replica["entrypoint"][2]
    assert workspace.env.get("REPLICATION_PASSWORD") not in json.dumps(document)
    portfolio = document["services"]["portfolio"]["environment"]
    assert portfolio["DATABASE_READ_HOST"] == "postgres-replica" and portfolio["DATABASE_READ_PORT"] == "5432"


def test_alertmanager_when_enabled_is_a_pinned_stack_service_reading_its_mounted_config(workspace):
    workspace.ecosystem_file.update(lambda doc: doc["core"]["monitoring"].__setitem__(
        "alertmanager", {"enabled": True, "port": 19093}))
    from ecoctl.commands.init import init_ecosystem

    (workspace.root / "compose.yaml").unlink()  # the swarm stack is derived from compose.yaml's entries
    init_ecosystem(workspace.root, force=True)
    workspace = Workspace(workspace.root)
    document, _ = render(workspace, ALL | {"alertmanager"}, {"portfolio": "eco/portfolio:abc"}, "node-1")
    entry = document["services"]["alertmanager"]
    assert entry["command"] == ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager",
                                "--cluster.listen-address="]
    assert entry["ports"] == [{"target": 9093, "published": 19093, "protocol": "tcp", "mode": "host"}]
    assert entry["deploy"]["replicas"] == 1 and entry["deploy"]["placement"]["constraints"] == [
        "node.hostname == node-1"]  # its silences and notification log stay where its volume is
    assert any(str(volume).endswith(":/etc/alertmanager:ro") for volume in entry["volumes"])
    assert "secrets" not in entry
