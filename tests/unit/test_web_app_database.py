"""A web app (`client: public`) has no database: no role, no database, no pool entry, no backup
target, no DATABASE_* in its contract; `plan` shows none for it, and a role left by an older
ecoctl is dropped with a reason that says so. No server: desired and actual states in, changes out."""

from __future__ import annotations

import pytest

from ecoctl.commands.init import init_ecosystem
from ecoctl.contract import db_password_key, secret_keys, service_environment
from ecoctl.providers.postgres import PostgresProvider, desired_state
from ecoctl.workspace import Workspace
from tests.helpers import ensure_secrets
from tests.unit.test_diffs import changed, converged_pg, database, role

WEB_APP = ("  web:\n    port: 3000\n    template: portfolio-web\n    client: public\n"
           "    calls: [portfolio]\n")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    """test_diffs's ecosystem (portfolio, loyalty reading portfolio) and a web app calling portfolio."""
    root = tmp_path_factory.mktemp("webdb") / "eco"
    init_ecosystem(root, runtime="docker", without=("web",))
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text() + "  loyalty:\n    port: 8100\n    reads: [portfolio]\n" + WEB_APP)
    ensure_secrets(Workspace(root))
    return Workspace(root)


def test_the_plan_has_no_database_or_role_for_a_web_app(workspace):
    desired = desired_state(workspace)
    assert "web" not in desired.databases and "web_user" not in desired.passwords
    assert sorted(desired.databases) == ["authentik", "loyalty", "portfolio"]
    assert PostgresProvider(workspace).diff(desired, converged_pg()) == []  # converged without web_db/web_user


def test_a_role_an_older_ecoctl_made_for_a_web_app_is_dropped_and_its_database_kept(workspace):
    actual = changed(converged_pg(), role_web_user=role("web_user"), db_web_db=database("web_db", "web_user"))
    [change] = PostgresProvider(workspace).diff(desired_state(workspace), actual)
    assert str(change) == ("- delete role web_user (a web app needs no database role; its grants are revoked; "
                           "database web_db kept (pass --drop-data to delete it))")


def test_the_contract_of_a_web_app_names_no_database(workspace):
    ecosystem = workspace.ecosystem
    assert db_password_key("web") not in secret_keys(ecosystem)
    assert db_password_key("portfolio") in secret_keys(ecosystem)
    for target in ("local", "compose", "swarm", "host"):
        env = service_environment(ecosystem, "web", target, workspace.env.values)
        assert not [name for name in env if name.startswith(("DATABASE_", "REDIS_"))], (target, env)
        assert "OIDC_CLIENT_SECRET" not in env and "OIDC_CLIENT_SECRET_FILE" not in env
        assert env["API_URLS"].startswith("portfolio=")
    assert service_environment(ecosystem, "portfolio", "local", workspace.env.values)["DATABASE_URL"]


def test_no_backup_target_and_no_pool_entry_for_a_web_app(workspace):
    from dataclasses import replace

    from ecoctl.commands.backup import databases_of
    from ecoctl.errors import UsageError
    from ecoctl.providers.postgres_scaling import ScalingState, SyncUserlist

    assert "web" not in databases_of(workspace, [])
    with pytest.raises(UsageError, match=r"^no service 'web' with a database"):
        databases_of(workspace, ["web"])
    pooled = Workspace(workspace.root)
    pooled.ecosystem.core.postgres = replace(pooled.ecosystem.core.postgres, pooler="pgbouncer")
    actual = converged_pg()
    actual.superuser = True  # the verifiers are known: the userlist is planned
    actual.scaling = ScalingState({}, None)
    [userlist] = [change for change in PostgresProvider(pooled).diff(desired_state(pooled), actual)
                  if isinstance(change.payload, SyncUserlist)]
    assert userlist.payload.roles == ("loyalty_user", "portfolio_user")


def test_under_authentik_an_api_accepts_the_web_apps_that_call_it(workspace, tmp_path):
    """OIDC_ACCEPTED_CLIENTS: the issuer, audience and JWKS URL of each web app that calls the API
    (Authentik issues a web app's token under its own issuer); none for an API no web app calls, and
    none under the development sign-in, whose web app tokens carry the API's own iss and aud."""
    import json

    ecosystem = workspace.ecosystem
    accepted = json.loads(service_environment(ecosystem, "portfolio", "compose", workspace.env.values)
                          ["OIDC_ACCEPTED_CLIENTS"])
    prefix = ecosystem.core.authentik.prefix
    # the issuer a browser sees: the edge's sign-in origin (the edge is on for a new ecosystem)
    assert accepted == [{"issuer": f"https://127.0.0.1:9443/application/o/{prefix}web/", "audience": f"{prefix}web",
                         "jwks_url": f"http://authentik-server:9000/application/o/{prefix}web/jwks/"}]
    assert "OIDC_ACCEPTED_CLIENTS" not in service_environment(ecosystem, "loyalty", "compose", workspace.env.values)
    local = tmp_path / "local"
    init_ecosystem(local, runtime="local")  # ships the web app, which calls portfolio
    ensure_secrets(Workspace(local))
    mine = Workspace(local)
    assert mine.ecosystem.services["web"].calls == ["portfolio"]
    assert "OIDC_ACCEPTED_CLIENTS" not in service_environment(mine.ecosystem, "portfolio", "local", mine.env.values)


def test_a_web_apps_compose_entry_waits_for_no_database(workspace):
    from ecoctl.providers.compose import service_entry

    ecosystem = workspace.ecosystem
    web = service_entry(workspace, "web", ecosystem.services["web"], "./services/web")
    assert "depends_on" not in web and not [name for name in web["environment"] if name.startswith("DATABASE_")]
    assert service_entry(workspace, "portfolio", ecosystem.services["portfolio"], "./services/portfolio")[
        "depends_on"] == {"postgres": {"condition": "service_healthy"}}
