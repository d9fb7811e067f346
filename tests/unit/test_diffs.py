"""Providers' diffs with no server (pyinfra-style): a desired state and an actual state in, the
changes out. Each row names what the real system would show and what ecoctl must then do."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecoctl.clients.authentik import Defaults
from ecoctl.clients.postgres import Actual as PgActual
from ecoctl.clients.postgres import DatabaseState, RoleState
from ecoctl.clients.prometheus_config import ScrapeJob
from ecoctl.commands.init import init_ecosystem
from ecoctl.plan import Conflict, Options
from ecoctl.providers.authentik import Actual as AkActual
from ecoctl.providers.authentik import AuthentikProvider, Client
from ecoctl.providers.postgres import PostgresProvider, desired_state
from ecoctl.clients.prometheus_rules import RuleFile, rendered
from ecoctl.providers.prometheus_alerts import OWNED, rules_header
from ecoctl.providers.prometheus import PrometheusProvider, ScrapeState
from ecoctl.workspace import Workspace
from tests.helpers import ensure_secrets

ADMIN = "postgres"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    """An ecosystem with portfolio and loyalty (which reads portfolio's database), secrets generated."""
    root = tmp_path_factory.mktemp("diffs") / "eco"
    init_ecosystem(root, runtime="docker", without=("web",))
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text() + "  loyalty:\n    port: 8100\n    reads: [portfolio]\n")
    workspace = Workspace(root)
    ensure_secrets(workspace)
    return Workspace(root)


def handled(provider, change) -> bool:
    """The provider has an applier for the change's payload, or it is a conflict (refused by every provider)."""
    from ecoctl.plan import Conflict

    return isinstance(change.payload, Conflict) or (change.payload is not None and type(change.payload) in provider.appliers)


def role(name, login=True, managed=True, member_of=(), **attributes):
    return RoleState(name, login, managed, None, frozenset(member_of), **attributes)


ISSUE_ROLE = dict(createrole=True, bypassrls=True,
                  member_of={"portfolio_readonly", "pg_execute_server_program", "portfolio_user"})
"""The role of issue 12: CREATEROLE, BYPASSRLS, may run programs on the server, may act as portfolio."""


def database(name, owner, managed=True, privileges=None, created_by_ecoctl=False):
    return DatabaseState(name, owner, managed, privileges or {owner: {"CONNECT", "TEMPORARY"}},
                         created_by_ecoctl=created_by_ecoctl)


def converged_pg() -> PgActual:
    """What the server holds once everything is applied."""
    roles = {name: role(name) for name in ("portfolio_user", "loyalty_user", "authentik_user")}
    roles["loyalty_user"] = role("loyalty_user", member_of={"portfolio_readonly"})
    roles["portfolio_readonly"] = role("portfolio_readonly", login=False)
    databases = {"portfolio_db": database("portfolio_db", "portfolio_user",
                                          privileges={"portfolio_user": {"CONNECT"}, "portfolio_readonly": {"CONNECT"}}),
                 "loyalty_db": database("loyalty_db", "loyalty_user"),
                 "authentik": database("authentik", "authentik_user")}
    owners = {(db, state.owner) for db, state in databases.items()}
    read = {("portfolio_db", "portfolio_readonly")}
    return PgActual(ADMIN, False, roles, databases, owners, read, read)


def changed(actual: PgActual, **edits) -> PgActual:
    for key, value in edits.items():
        if key.startswith("role_"):
            actual.roles[key[5:]] = value
        elif key.startswith("drop_role_"):
            actual.roles.pop(key[10:])
        elif key.startswith("db_"):
            actual.databases[key[3:]] = value
    return actual


PG_CASES = [
    ("nothing to do", converged_pg(), []),
    ("a fresh server", PgActual(ADMIN, False, {}, {}, set(), set(), set()), [
        "+ create role portfolio_user", "+ create role loyalty_user", "+ create role authentik_user",
        "+ create database portfolio_db", "+ create database loyalty_db", "+ create database authentik",
        "+ create role portfolio_readonly", "+ create membership loyalty_user in portfolio_readonly"]),
    ("a role that cannot log in", changed(converged_pg(), role_loyalty_user=role(
        "loyalty_user", login=False, member_of={"portfolio_readonly"})), ["~ update role loyalty_user"]),
    ("a role ecoctl did not create is a conflict", changed(converged_pg(), role_loyalty_user=role(
        "loyalty_user", managed=False, **ISSUE_ROLE)), ["! conflict role loyalty_user"]),
    ("a read group ecoctl did not create is a conflict", changed(converged_pg(), role_portfolio_readonly=role(
        "portfolio_readonly", login=False, managed=False)), ["! conflict role portfolio_readonly"]),
    ("a database ecoctl did not create is a conflict", changed(converged_pg(), db_loyalty_db=database(
        "loyalty_db", "loyalty_user", managed=False)), ["! conflict database loyalty_db"]),
    ("an unmarked database a killed run created (its journal says so) is marked, not a conflict",
     changed(converged_pg(), db_loyalty_db=database("loyalty_db", "loyalty_user", managed=False,
                                                    created_by_ecoctl=True)),
     ["~ update database loyalty_db"]),
    ("a managed role with more attributes and memberships", changed(converged_pg(), role_loyalty_user=role(
        "loyalty_user", **ISSUE_ROLE)), ["~ update role loyalty_user"]),
    ("a superuser login role", changed(converged_pg(), role_portfolio_user=role("portfolio_user", superuser=True)),
     ["~ update role portfolio_user"]),
    ("NOINHERIT, a connection limit, an expiry", changed(converged_pg(), role_portfolio_user=role(
        "portfolio_user", inherit=False, connlimit=2, valid_until="2020-01-01 00:00:00+00")),
     ["~ update role portfolio_user"]),
    ("a read group with attributes and a predefined role", changed(converged_pg(), role_portfolio_readonly=role(
        "portfolio_readonly", login=False, createdb=True, replication=True, member_of={"pg_read_server_files"})),
     ["~ update role portfolio_readonly"]),
    ("a service role granted CONNECT on template1 by name", changed(converged_pg(), db_template1=database(
        "template1", "postgres", privileges={"PUBLIC": {"CONNECT"}, "loyalty_user": {"CONNECT", "TEMPORARY"}})),
     ["~ update role loyalty_user"]),
    ("what PUBLIC may do in postgres is not ecoctl's", changed(converged_pg(), db_postgres=database(
        "postgres", "postgres", managed=False, privileges={"PUBLIC": {"CONNECT", "TEMPORARY"}})), []),
    ("a reader that may grant its read group to others", changed(converged_pg(), role_loyalty_user=role(
        "loyalty_user", member_of={"portfolio_readonly"}, admin_of={"portfolio_readonly"})),
     ["~ update role loyalty_user"]),
    ("a hand-made member of a read group", changed(converged_pg(), role_alice=role(
        "alice", managed=False, member_of={"portfolio_readonly"})), ["- delete membership alice in portfolio_readonly"]),
    ("a hand-made member of a service's login role (issue 27.15: may SET ROLE to it)", changed(
        converged_pg(), role_spy=role("spy", managed=False, member_of={"loyalty_user"})),
     ["- delete membership spy in loyalty_user"]),
    ("the admin in a login role (a non-superuser admin acts as the owners it assigns)", changed(
        converged_pg(), role_postgres=role("postgres", managed=False, createrole=True, member_of={"loyalty_user"})), []),
    ("a setting on a service role (issue 27.15: ALTER ROLE ... SET search_path)", changed(
        converged_pg(), role_portfolio_user=role("portfolio_user", settings={("", "search_path=evil")})),
     ["~ update role portfolio_user"]),
    ("a setting on a hand-made role is left alone", changed(converged_pg(), role_alice=role(
        "alice", managed=False, settings={("", "search_path=evil")})), []),
    ("the admin in a read group (PostgreSQL 16 makes the creator one)", changed(converged_pg(), role_postgres=role(
        "postgres", managed=False, superuser=True, createrole=True, member_of={"portfolio_readonly"})), []),
    ("PUBLIC may connect", changed(converged_pg(), db_loyalty_db=database(
        "loyalty_db", "loyalty_user", privileges={"loyalty_user": {"CONNECT"}, "PUBLIC": {"CONNECT"}})),
     ["~ update database loyalty_db"]),
    ("another role may connect", changed(converged_pg(), db_loyalty_db=database(
        "loyalty_db", "loyalty_user", privileges={"loyalty_user": {"CONNECT"}, "intruder": {"CONNECT"}})),
     ["~ update database loyalty_db"]),
    ("the membership was revoked", changed(converged_pg(), role_loyalty_user=role("loyalty_user")),
     ["+ create membership loyalty_user in portfolio_readonly"]),
    ("a removed service's role", changed(converged_pg(), role_gone_user=role("gone_user"),
                                         db_gone_db=database("gone_db", "gone_user")),
     ["- delete role gone_user"]),
    ("a hand-made role is left alone", changed(converged_pg(), role_alice=role("alice", managed=False)), []),
]


@pytest.mark.parametrize("why, actual, expected", PG_CASES, ids=[case[0] for case in PG_CASES])
def test_postgres_diff(workspace, why, actual, expected):
    provider = PostgresProvider(workspace)
    changes = provider.diff(desired_state(workspace), actual)
    assert [f"{str(c).split(' (')[0]}" for c in changes] == expected
    for change in changes:
        assert handled(provider, change)


def test_role_drift_names_what_is_removed(workspace):
    actual = changed(converged_pg(), role_loyalty_user=role("loyalty_user", **ISSUE_ROLE))
    [change] = PostgresProvider(workspace).diff(desired_state(workspace), actual)
    assert str(change) == ("~ update role loyalty_user (CREATEROLE, BYPASSRLS, member of "
                           "pg_execute_server_program, portfolio_user: removed)")
    assert change.payload.clauses == ("NOCREATEROLE", "NOBYPASSRLS")
    assert change.payload.revoke == ("pg_execute_server_program", "portfolio_user")


def test_role_settings_are_named_and_reset_where_they_were_set(workspace):
    settings = {("", "search_path=evil"), ("loyalty_db", "statement_timeout=1ms")}
    actual = changed(converged_pg(), role_loyalty_user=role("loyalty_user", member_of={"portfolio_readonly"},
                                                          settings=frozenset(settings)))
    [change] = PostgresProvider(workspace).diff(desired_state(workspace), actual)
    assert str(change) == ("~ update role loyalty_user (setting search_path=evil, setting statement_timeout=1ms "
                           "in loyalty_db: removed)")
    assert change.payload.reset_in == ("", "loyalty_db") and change.payload.revoke == ()


def test_a_conflict_says_how_to_take_it_over_and_its_applier_refuses(workspace):
    from ecoctl.errors import EcoctlError

    actual = changed(converged_pg(), role_loyalty_user=role("loyalty_user", managed=False, **ISSUE_ROLE))
    provider = PostgresProvider(workspace)
    [change] = provider.diff(desired_state(workspace), actual)
    assert str(change) == "! conflict role loyalty_user (exists, not created by ecoctl: pass --adopt to take it over)"
    with pytest.raises(EcoctlError, match=r"^PostgreSQL role loyalty_user exists and was not created by ecoctl: "
                                          r"run `ecoctl apply --adopt`"):
        provider.apply(change)


ADOPT_CASES = [
    ("a role with the issue's grants is adopted and stripped", changed(converged_pg(), role_loyalty_user=role(
        "loyalty_user", managed=False, **ISSUE_ROLE)), ["~ update role loyalty_user", "~ update role loyalty_user"]),
    ("a database is adopted", changed(converged_pg(), db_loyalty_db=database(
        "loyalty_db", "loyalty_user", managed=False)), ["~ update database loyalty_db"]),
    ("a read group is adopted", changed(converged_pg(), role_portfolio_readonly=role(
        "portfolio_readonly", login=False, managed=False)), ["~ update role portfolio_readonly"]),
]


@pytest.mark.parametrize("why, actual, expected", ADOPT_CASES, ids=[case[0] for case in ADOPT_CASES])
def test_postgres_diff_with_adopt(workspace, why, actual, expected):
    provider = PostgresProvider(workspace, Options(adopt=True))
    changes = provider.diff(desired_state(workspace), actual)
    assert [f"{str(c).split(' (')[0]}" for c in changes] == expected
    assert all(handled(provider, change) for change in changes)


def test_postgres_diff_drops_data_only_when_asked(workspace):
    actual = changed(converged_pg(), role_gone_user=role("gone_user"), db_gone_db=database("gone_db", "gone_user"))
    kept = PostgresProvider(workspace).diff(desired_state(workspace), actual)
    assert "database gone_db kept (pass --drop-data to delete it)" in str(kept[-1])
    dropped = PostgresProvider(workspace, Options(drop_data=frozenset({"gone"}))).diff(desired_state(workspace), actual)
    assert [str(c).split(" (")[0] for c in dropped] == ["- delete database gone_db", "- delete role gone_user"]


DEFAULTS = Defaults("flow-authz", "flow-invalidate", "key-1", ("map-openid", "map-email", "map-profile"))


def ak_provider(workspace, service, pk, **overrides) -> dict:
    fields = AuthentikProvider(workspace).provider_fields(
        AuthentikProvider(workspace).desired()[service], DEFAULTS)
    return {**fields, "pk": pk, **overrides}


def ak_app(slug, provider_pk, publisher="ecoctl:eco"):
    return {"slug": slug, "provider": provider_pk, "meta_publisher": publisher}


def ak_converged(ws, portfolio=None, loyalty=None, apps=None, **more):
    """What Authentik holds once everything is applied (init recorded the prefix `eco-`)."""
    providers = {"eco-portfolio": ak_provider(ws, "portfolio", 1, **(portfolio or {})),
                 "eco-loyalty": ak_provider(ws, "loyalty", 2, **(loyalty or {}))}
    applications = {"eco-portfolio": ak_app("eco-portfolio", 1), "eco-loyalty": ak_app("eco-loyalty", 2),
                    **(apps or {})}
    return {**providers, **more}, applications


AK_CASES = [
    ("a fresh Authentik", lambda ws: ({}, {}), [
        "+ create oauth2 provider eco/eco-portfolio-provider", "+ create application eco-portfolio",
        "+ create oauth2 provider eco/eco-loyalty-provider", "+ create application eco-loyalty"]),
    ("nothing to do", lambda ws: ak_converged(ws), []),
    ("a redirect URI changed by hand", lambda ws: ak_converged(
        ws, portfolio={"redirect_uris": [{"matching_mode": "strict", "url": "http://evil/cb"}]}),
     ["~ update oauth2 provider eco/eco-portfolio-provider"]),
    ("a redirect URI switched to regex matching", lambda ws: ak_converged(
        ws, portfolio={"redirect_uris": [{"matching_mode": "regex", "url": "http://127.0.0.1:8000/callback"}]}),
     ["~ update oauth2 provider eco/eco-portfolio-provider"]),
    ("sub_mode changed by hand", lambda ws: ak_converged(ws, loyalty={"sub_mode": "user_email"}),
     ["~ update oauth2 provider eco/eco-loyalty-provider"]),
    ("a client secret that is not .env's", lambda ws: ak_converged(ws, portfolio={"client_secret": "leaked"}),
     ["~ update oauth2 provider eco/eco-portfolio-provider"]),
    ("an application bound elsewhere", lambda ws: ak_converged(ws, apps={"eco-loyalty": ak_app("eco-loyalty", 99)}),
     ["~ update application eco-loyalty"]),
    ("a removed service's objects go", lambda ws: ak_converged(
        ws, apps={"gone": ak_app("gone", 3)}, gone={"pk": 3, "client_id": "gone", "name": "eco/gone-provider"}),
     ["- delete application gone", "- delete oauth2 provider eco/gone-provider"]),
    ("a removed service's objects made before the marker go", lambda ws: ak_converged(
        ws, apps={"gone": ak_app("gone", 3)}, gone={"pk": 3, "client_id": "gone", "name": "gone-provider"}),
     ["- delete application gone", "- delete oauth2 provider gone-provider"]),
    ("our provider a crash left without its application goes", lambda ws: ak_converged(
        ws, gone={"pk": 3, "client_id": "gone", "name": "eco/gone-provider"}),
     ["- delete oauth2 provider eco/gone-provider"]),
    ("another ecosystem's application is left alone", lambda ws: ak_converged(
        ws, apps={"theirs": ak_app("theirs", 7, "ecoctl:other")}), []),
    ("a hand-made provider of a removed name is left alone", lambda ws: ak_converged(
        ws, gone={"pk": 3, "client_id": "gone", "name": "gone-provider"}), []),
    ("another ecosystem's objects with our slug are a conflict", lambda ws: (
        {"eco-portfolio": {**ak_provider(ws, "portfolio", 1), "name": "other/eco-portfolio-provider"},
         "eco-loyalty": ak_provider(ws, "loyalty", 2)},
        {"eco-portfolio": ak_app("eco-portfolio", 1, "ecoctl:other"), "eco-loyalty": ak_app("eco-loyalty", 2)}),
     ["! conflict oauth2 provider other/eco-portfolio-provider", "! conflict application eco-portfolio"]),
]


@pytest.mark.parametrize("why, actual, expected", AK_CASES, ids=[case[0] for case in AK_CASES])
def test_authentik_diff(workspace, why, actual, expected):
    provider = AuthentikProvider(workspace)
    providers, applications = actual(workspace)
    changes = provider.diff(provider.desired(), AkActual(providers, applications, DEFAULTS))
    assert [str(c).split(" (")[0] for c in changes] == expected
    assert all(handled(provider, change) for change in changes)
    assert all(change.service for change in changes)
    conflicts = [change for change in changes if isinstance(change.payload, Conflict)]
    assert bool(conflicts) == ("conflict" in why)


def test_authentik_conflict_is_adopted_when_asked(workspace):
    providers = {"eco-portfolio": {**ak_provider(workspace, "portfolio", 1), "name": "eco-portfolio-provider"},
                 "eco-loyalty": ak_provider(workspace, "loyalty", 2)}
    applications = {"eco-portfolio": ak_app("eco-portfolio", 1, ""), "eco-loyalty": ak_app("eco-loyalty", 2)}
    provider = AuthentikProvider(workspace, Options(adopt=True))
    changes = provider.diff(provider.desired(), AkActual(providers, applications, DEFAULTS))
    assert [str(c) for c in changes] == [
        "~ update oauth2 provider eco/eco-portfolio-provider (adopted; name)",
        "~ update application eco-portfolio (adopted; bind to eco/eco-portfolio-provider)"]
    assert changes[0].payload.patch == {"name": "eco/eco-portfolio-provider"}


def test_authentik_desired_carries_the_secret_from_env(workspace):
    wanted = AuthentikProvider(workspace).desired()["loyalty"]
    # no redirect_uris in ecosystem.yaml: the default is on the edge's HTTPS origin (the edge is on)
    assert wanted == Client("loyalty", ("https://127.0.0.1:8443/api/loyalty/callback",),
                            workspace.env.get("LOYALTY_OIDC_CLIENT_SECRET"), "eco-loyalty")


ITSELF = ScrapeJob("prometheus", ("localhost:9090",), None, None, managed=False)
"""Prometheus's own job as files made before it was ecoctl's hold it: in place, unmarked."""
PROM_CASES = [
    ("missing jobs", {}, None, True, ["+ create scrape job prometheus", "+ create scrape job portfolio",
                                      "+ create scrape job loyalty"]),
    ("in place and loaded", {"prometheus": ITSELF, "portfolio": ScrapeJob("portfolio", ("portfolio:8000",)),
                             "loyalty": ScrapeJob("loyalty", ("loyalty:8100",))},
     {"prometheus", "portfolio", "loyalty"}, True, []),
    ("written but never reloaded", {"prometheus": ITSELF, "portfolio": ScrapeJob("portfolio", ("portfolio:8000",)),
                                    "loyalty": ScrapeJob("loyalty", ("loyalty:8100",))}, {"prometheus", "portfolio"},
     True, ["~ update scrape job loyalty"]),
    ("a moved target", {"prometheus": ScrapeJob("prometheus", ("localhost:9091",), None, None),
                        "portfolio": ScrapeJob("portfolio", ("elsewhere:1",)),
                        "loyalty": ScrapeJob("loyalty", ("loyalty:8100",))}, None, True,
     ["~ update scrape job prometheus", "~ update scrape job portfolio"]),
    ("the user's own job stays, ecoctl's old one goes",
     {"prometheus": ITSELF, "portfolio": ScrapeJob("portfolio", ("portfolio:8000",)),
      "loyalty": ScrapeJob("loyalty", ("loyalty:8100",)),
      "node": ScrapeJob("node", ("n:9100",), managed=False), "gone": ScrapeJob("gone", ("gone:1",), managed=True)},
     None, True, ["- delete scrape job gone"]),
    ("rules written, not loaded by the running Prometheus", {"prometheus": ITSELF,
     "portfolio": ScrapeJob("portfolio", ("portfolio:8000",)), "loyalty": ScrapeJob("loyalty", ("loyalty:8100",))},
     {"prometheus", "portfolio", "loyalty"}, True, ["~ update alert rules loyalty"]),
    ("rules not loaded by prometheus.yml, nor written", {"prometheus": ITSELF}, None, False,
     ["+ create scrape job portfolio", "+ create scrape job loyalty", "~ update rule files prometheus.yml",
      "+ create alert rules portfolio", "+ create alert rules loyalty"]),
]


@pytest.mark.parametrize("why, jobs, loaded, rules, expected", PROM_CASES, ids=[case[0] for case in PROM_CASES])
def test_prometheus_diff(workspace, why, jobs, loaded, rules, expected):
    provider = PrometheusProvider(workspace)
    desired = provider.desired()
    files = {name: RuleFile(Path(f"{name}.yml"), rendered(name, wanted, rules_header(name)), name, set(OWNED))
             for name, wanted in desired.rules.items()} if rules else {}
    groups = None if loaded is None else set(desired.rules) - ({"loyalty"} if "not loaded" in why else set())
    changes = provider.diff(desired, ScrapeState(jobs, loaded, files, rules, loaded_groups=groups))
    assert [str(c).split(" (")[0] for c in changes] == expected
    assert all(handled(provider, change) for change in changes)
