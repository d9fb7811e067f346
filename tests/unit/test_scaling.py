"""The data layer's scaling with no server: settings, the contract through the pooler and the replica,
pgbouncer's config and userlist, and the postgres provider's diff of the userlist, the replication
role and the slot (desired + actual in, changes out)."""

from __future__ import annotations

import pytest

from ecoctl import components, contract, scaling
from ecoctl.clients.postgres import Actual, RoleState
from ecoctl.commands.init import init_ecosystem
from ecoctl.errors import UsageError
from ecoctl.plan import Conflict, Options
from ecoctl.providers.postgres import PostgresProvider
from ecoctl.providers.postgres_scaling import (DropUserlist, ReplicationRole, ReplicationSlot, ScalingState, SyncUserlist,
                                               diff_scaling)
from ecoctl.workspace import Workspace
from tests.helpers import ensure_secrets

ROLES = ["portfolio_user", "loyalty_user"]


def scaled(tmp_path, runtime: str = "local", **postgres) -> Workspace:
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))

    def change(doc):
        doc["runtime"] = runtime
        doc["core"]["postgres"].update(postgres)
        doc["services"]["loyalty"] = {"port": 8100, "reads": ["portfolio"]}
        doc["services"]["audit"] = {"port": 8200}

    Workspace(root).ecosystem_file.update(change)
    workspace = Workspace(root)
    ensure_secrets(workspace)
    return Workspace(root)


def test_the_settings_and_what_they_may_not_be_combined_with(tmp_path):
    workspace = scaled(tmp_path, pooler="pgbouncer", replicas=1)
    postgres = workspace.ecosystem.core.postgres
    assert (postgres.pooler_port, postgres.max_client_conn, postgres.pool_size, postgres.replica_port) == \
        (6432, 1000, 20, 5433)
    assert {6432: "pgbouncer", 5433: "postgres-replica"}.items() <= workspace.ecosystem.core_ports.items()
    assert [component.name for component in components.enabled(workspace.ecosystem, "core")][:2] == \
        ["pgbouncer", "postgres-replica"]
    for key in ("POOLER_STATS_PASSWORD", "REPLICATION_PASSWORD"):
        assert key in contract.secret_keys(workspace.ecosystem) and workspace.env.get(key)
    with pytest.raises(UsageError, match=r"core\.postgres\.replicas: .*at most 1|core\.postgres\.replicas"):
        scaled(tmp_path / "a", replicas=2)
    with pytest.raises(UsageError, match="core.postgres.pooler runs beside the stack's own PostgreSQL"):
        scaled(tmp_path / "b", pooler="pgbouncer", external={"host": "db.example.com"})
    from ecoctl.runtimes import get_runtime

    assert get_runtime(scaled(tmp_path / "c", "swarm", replicas=1)).name == "swarm"  # every runtime runs it
    assert scaled(tmp_path / "d", "docker", replicas=1).ecosystem.core.postgres.replicas == 1
    for runtime in ("docker", "swarm"):
        assert scaled(tmp_path / runtime, runtime, pooler="pgbouncer").ecosystem.core.postgres.pooler == "pgbouncer"


def test_services_reach_the_database_through_the_pooler_and_readers_get_the_replica(tmp_path):
    workspace = scaled(tmp_path, pooler="pgbouncer", pooler_port=16432, replicas=1, replica_port=15433)
    secrets = workspace.env.values
    local = contract.service_environment(workspace.ecosystem, "loyalty", "local", secrets)
    password = secrets["LOYALTY_DB_PASSWORD"]
    assert (local["DATABASE_HOST"], local["DATABASE_PORT"]) == ("127.0.0.1", "16432")
    assert local["DATABASE_URL"] == f"postgresql://loyalty_user:{password}@127.0.0.1:16432/loyalty_db"
    assert local["DATABASE_READ_URL"] == f"postgresql://loyalty_user:{password}@127.0.0.1:15433/loyalty_db"
    assert (local["DATABASE_READ_HOST"], local["DATABASE_READ_PORT"]) == ("127.0.0.1", "15433")
    # a service that reads nobody's data gets no read URL, unless it asks
    audit = contract.service_environment(workspace.ecosystem, "audit", "host", secrets)
    assert "DATABASE_READ_URL" not in audit and audit["DATABASE_PORT"] == "16432"
    workspace.ecosystem_file.update(lambda doc: doc["services"]["audit"].update({"read_replica": True}))
    asked = contract.service_environment(Workspace(workspace.root).ecosystem, "audit", "host", secrets)
    assert asked["DATABASE_READ_URL"].endswith("@127.0.0.1:15433/audit_db")
    # containers: by name, on the ports inside the network; swarm reads secrets from files
    compose = contract.endpoints(workspace.ecosystem, "compose")
    assert (compose.database_host, compose.database_port, compose.replica) == \
        ("pgbouncer", 6432, ("postgres-replica", 5432))


def test_without_scaling_nothing_changes_in_the_contract(tmp_path):
    workspace = scaled(tmp_path)
    local = contract.service_environment(workspace.ecosystem, "loyalty", "local", workspace.env.values)
    assert local["DATABASE_PORT"] == "5432" and "DATABASE_READ_URL" not in local
    assert not {"POOLER_STATS_PASSWORD", "REPLICATION_PASSWORD"} & set(contract.secret_keys(workspace.ecosystem))


def test_pgbouncer_config_pools_per_transaction_with_scram():
    text = scaling.pgbouncer_ini(listen_addr="127.0.0.1", listen_port=6432, server_host="127.0.0.1",
                                 server_port=5432, auth_file="/run/u.txt", max_client_conn=1000, pool_size=20)
    settings = dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)
    assert settings["*"] == "host=127.0.0.1 port=5432"
    assert (settings["pool_mode"], settings["auth_type"], settings["max_client_conn"]) == \
        ("transaction", "scram-sha-256", "1000")
    assert settings["auth_file"] == "/run/u.txt" and settings["stats_users"] == scaling.POOLER_STATS_USER
    assert scaling.open_files(1000, 20) > 1000 + 20


def test_the_userlist_round_trips():
    verifiers = {"b_user": "SCRAM-SHA-256$4096:c2FsdA==$a:b", "a_user": "SCRAM-SHA-256$4096:eA==$c:d"}
    text = scaling.userlist_text(verifiers)
    assert text.splitlines()[0] == '"a_user" "SCRAM-SHA-256$4096:eA==$c:d"'
    assert scaling.parse_userlist(text + "; a comment\n") == verifiers


def role(name: str, verifier: str | None = None, **attributes) -> RoleState:
    return RoleState(name, True, True, verifier, frozenset(), **attributes)


def actual(slots=None, userlist=None, superuser=True, **roles) -> Actual:
    state = Actual("postgres", superuser, {name: value for name, value in roles.items()}, {}, set(), set(), set())
    state.scaling = ScalingState(slots or {}, userlist)
    return state


def kinds(changes) -> list[tuple[str, str, str, type]]:
    return [(change.action, change.kind, change.name, type(change.payload)) for change in changes]


def test_the_userlist_follows_the_service_roles_verifiers(tmp_path, monkeypatch):
    from ecoctl.clients import postgres as client

    workspace = scaled(tmp_path, pooler="pgbouncer")
    provider = PostgresProvider(workspace)
    roles = {name: role(name, f"SCRAM-SHA-256$4096:{name}") for name in ROLES}
    assert kinds(diff_scaling(provider, ROLES, actual(**roles), [])) == \
        [("create", "file", "pooler/userlist.txt", SyncUserlist)]
    monkeypatch.setattr(client, "verifier_matches", lambda verifier, password: verifier == "stats-ok")
    current = {name: state.verifier for name, state in roles.items()}
    synced = {**current, scaling.POOLER_STATS_USER: "stats-ok"}
    assert diff_scaling(provider, ROLES, actual(userlist=synced, **roles), []) == []
    changed = {**roles, "loyalty_user": role("loyalty_user", "SCRAM-SHA-256$4096:new")}
    [change] = diff_scaling(provider, ROLES, actual(userlist=synced, **changed), [])
    assert (change.action, change.detail) == ("update", "a service role's verifier changed")
    stale = {**synced, scaling.POOLER_STATS_USER: "stats-old"}
    [change] = diff_scaling(provider, ROLES, actual(userlist=stale, **roles), [])
    assert "ecoctl_pooler's verifier differs from .env POOLER_STATS_PASSWORD" in change.detail
    # without the pooler, its userlist goes
    plain = PostgresProvider(scaled(tmp_path / "plain"))
    assert kinds(diff_scaling(plain, ROLES, actual(userlist=synced, **roles), [])) == \
        [("delete", "file", "pooler/userlist.txt", DropUserlist)]


def test_the_replica_has_its_role_and_slot_and_the_slot_goes_with_it(tmp_path, monkeypatch):
    from ecoctl.clients import postgres as client

    provider = PostgresProvider(scaled(tmp_path, replicas=1))
    assert kinds(diff_scaling(provider, ROLES, actual(), [])) == [
        ("create", "role", scaling.REPLICATION_ROLE, ReplicationRole),
        ("create", "replication slot", scaling.REPLICATION_SLOT, ReplicationSlot)]
    monkeypatch.setattr(client, "verifier_matches", lambda verifier, password: verifier == "right")
    done = {scaling.REPLICATION_ROLE: role(scaling.REPLICATION_ROLE, "right", replication=True)}
    assert diff_scaling(provider, ROLES, actual(slots={scaling.REPLICATION_SLOT: True}, **done), []) == []
    weak = {scaling.REPLICATION_ROLE: role(scaling.REPLICATION_ROLE, "wrong", replication=False)}
    [change] = diff_scaling(provider, ROLES, actual(slots={scaling.REPLICATION_SLOT: True}, **weak), [])
    assert change.detail == "LOGIN REPLICATION, managed by ecoctl; password differs from .env REPLICATION_PASSWORD"
    # a role of that name someone else made is a conflict, taken over with --adopt
    theirs = {scaling.REPLICATION_ROLE: RoleState(scaling.REPLICATION_ROLE, True, False, "right", frozenset(),
                                                  replication=True)}
    [conflict] = diff_scaling(provider, ROLES, actual(slots={scaling.REPLICATION_SLOT: True}, **theirs), [])
    assert isinstance(conflict.payload, Conflict) and "--adopt" in conflict.payload.message
    adopting = PostgresProvider(provider.workspace, Options(adopt=True))
    assert kinds(diff_scaling(adopting, ROLES, actual(slots={scaling.REPLICATION_SLOT: True}, **theirs), [])) == \
        [("update", "role", scaling.REPLICATION_ROLE, ReplicationRole)]
    # no replica: its slot is dropped (the role stays, harmless without a slot)
    none = PostgresProvider(scaled(tmp_path / "none"))
    assert kinds(diff_scaling(none, ROLES, actual(slots={scaling.REPLICATION_SLOT: False}, **done), [])) == \
        [("delete", "replication slot", scaling.REPLICATION_SLOT, ReplicationSlot)]


def pooler_changes(workspace: Workspace) -> list:
    from ecoctl.providers.compose import ComposeProvider

    return [change for change in ComposeProvider(Workspace(workspace.root)).plan() if change.name == "pgbouncer"]


def test_the_compose_provider_adds_the_pooler_to_an_existing_compose_yaml(tmp_path):
    """compose.yaml written before the pooler was enabled gets its entry; disabled again, it goes."""
    from ecoctl.providers.compose import ComposeProvider

    workspace = scaled(tmp_path, "docker")
    (workspace.root / "compose.yaml").write_text((workspace.root / "compose.yaml").read_text())
    workspace.ecosystem_file.update(lambda doc: doc["core"]["postgres"].update({"pooler": "pgbouncer"}))
    provider = ComposeProvider(Workspace(workspace.root))
    [added] = pooler_changes(workspace)
    assert (added.action, added.kind, added.detail) == ("create", "compose service", "switched on in ecosystem.yaml")
    provider.apply(added)
    entry = ComposeProvider(Workspace(workspace.root)).read()["main"].services()["pgbouncer"]
    assert entry["environment"]["MAX_CLIENT_CONN"] == "1000" and entry["ports"] == ["127.0.0.1:6432:6432"]
    assert entry["volumes"] == ["./.ecoctl/pooler:/run/ecoctl-pooler:ro"]
    assert pooler_changes(workspace) == []
    # a new limit reaches the entry; without the pooler the entry goes
    workspace.ecosystem_file.update(lambda doc: doc["core"]["postgres"].update({"max_client_conn": 3000}))
    [limit] = pooler_changes(workspace)
    assert (limit.action, limit.kind, limit.name) == ("update", "compose environment", "pgbouncer")
    workspace.ecosystem_file.update(lambda doc: doc["core"]["postgres"].pop("pooler"))
    [gone] = pooler_changes(workspace)
    assert (gone.action, gone.name, gone.detail) == ("delete", "pgbouncer", "core.postgres.pooler is not set")


def test_in_containers_the_primary_lets_the_replica_stream_from_the_network(tmp_path, monkeypatch):
    from ecoctl.clients import postgres as client
    from ecoctl.plan import RuntimeView
    from ecoctl.providers.postgres_scaling import AllowReplication

    monkeypatch.setattr(client, "verifier_matches", lambda verifier, password: True)
    workspace = scaled(tmp_path, "docker", replicas=1)
    provider = PostgresProvider(workspace, runtime=RuntimeView(in_containers=True))
    done = {scaling.REPLICATION_ROLE: role(scaling.REPLICATION_ROLE, "right", replication=True)}
    state = actual(slots={scaling.REPLICATION_SLOT: True}, **done)
    state.scaling.replication_allowed = False
    assert kinds(diff_scaling(provider, ROLES, state, [])) == \
        [("update", "pg_hba.conf", scaling.REPLICATION_HBA, AllowReplication)]
    state.scaling.replication_allowed = True
    assert diff_scaling(provider, ROLES, state, []) == []


def test_the_replica_container_takes_a_base_backup_then_runs_a_hot_standby(tmp_path):
    from ecoctl import compose_core

    workspace = scaled(tmp_path, "docker", replicas=1, replica_port=15433)
    entry = compose_core.entry(workspace.ecosystem, components.POSTGRES_REPLICA)
    assert entry["ports"] == ["127.0.0.1:15433:5432"] and entry["depends_on"] == {
        "postgres": {"condition": "service_healthy"}}
    assert entry["volumes"] == ["postgres_replica_data:/var/lib/postgresql/data"]
    assert entry["environment"]["PGPASSWORD"] == "${REPLICATION_PASSWORD:?run ecoctl init to create .env}"
    shell, flag, script = entry["entrypoint"]
    assert (shell, flag) == ("sh", "-c")
    assert "pg_basebackup -D $$PGDATA -h postgres -p 5432 -U ecoctl_replicator -S ecoctl_replica_1" in script
    assert script.endswith("postgres -D $$PGDATA -p 5432 -c listen_addresses='*' -c unix_socket_directories= "
                           "-c hot_standby=on")
    # the password is copied from the environment (or the secret's file) into a pgpass file, and
    # nothing the script starts sees the variable; its value is never in argv
    assert workspace.env.get(scaling.REPLICATION_PASSWORD) not in script
    assert f"unset PGPASSWORD PGPASSWORD_FILE && export PGPASSFILE={scaling.REPLICA_PASSFILE}" in script
    # kept data is checked before the standby starts on it; data that cannot catch up is taken again
    check = scaling.replica_kept_check("psql", "postgres", 5432).replace("$", "$$")
    assert f"if [ -s \"$$PGDATA/PG_VERSION\" ]; then ( {check} ); kept=$$?" in script


@pytest.mark.parametrize("source", ["PGPASSWORD", "PGPASSWORD_FILE"])
def test_the_replicas_pgpass_line_escapes_what_libpq_reads(tmp_path, source):
    import subprocess

    password = r"a:b\c-d_e"
    environment = {"PATH": "/usr/bin:/bin"}
    if source == "PGPASSWORD_FILE":
        (tmp_path / "secret").write_text(password + "\n")  # a secret file may end in a newline
        environment[source] = str(tmp_path / "secret")
    else:
        environment[source] = password
    target = tmp_path / "pgpass"
    subprocess.run(["sh", "-c", "umask 077 && " + scaling.pgpass_script(str(target))], env=environment, check=True)
    assert target.read_text() == "*:*:*:ecoctl_replicator:a\\:b\\\\c-d_e\n"
    assert target.stat().st_mode & 0o077 == 0


def test_the_kept_data_check_tells_a_slot_with_wal_from_one_without(tmp_path):
    """READ_REPLICATION_SLOT's row (type|restart_lsn|timeline): data goes on only when the slot
    kept WAL for it; an unanswered primary is another exit (the data is kept)."""
    import subprocess

    answers = {"physical|0/3000148|1": 0, "physical||": 3, "||": 3}
    for row, code in answers.items():
        fake = tmp_path / "psql"
        fake.write_text(f"#!/bin/sh\necho '{row}'\n")
        fake.chmod(0o755)
        done = subprocess.run(["sh", "-c", scaling.replica_kept_check(str(fake), "127.0.0.1", 5432)],
                              capture_output=True, text=True)
        assert done.returncode == code, row
        assert ("no WAL kept" in done.stdout) == (code == 3)
    fake.write_text("#!/bin/sh\necho 'connection refused' >&2; exit 2\n")
    assert subprocess.run(["sh", "-c", scaling.replica_kept_check(str(fake), "127.0.0.1", 5432)],
                          capture_output=True).returncode == 1


def test_every_scaling_change_has_an_applier(tmp_path):
    provider = PostgresProvider(scaled(tmp_path, pooler="pgbouncer", replicas=1))
    for change in diff_scaling(provider, ROLES, actual(), []):
        assert type(change.payload) in provider.appliers
