"""A web app (`client: public`) gets nothing of PostgreSQL, against the real server of the `pg`
fixture: no role, no database; removing it plans nothing there; the role and database an older
ecoctl made for a web app are handled as a removed service's (role dropped, data kept)."""

from __future__ import annotations

import psycopg

from ecoctl.plan import make_plan
from ecoctl.providers.postgres import PostgresProvider
from ecoctl.workspace import Workspace
from tests.integration.test_postgres_provider import clean, provision  # noqa: F401  (fixture)

WEB = {"port": 3000, "template": "portfolio-web", "client": "public", "calls": ["portfolio"]}


def write(root, pg, web: dict | None) -> Workspace:
    lines = ["name: test", "runtime: local", "core:", "  postgres:", f"    port: {pg.port}",
             "  authentik:", "    url: http://127.0.0.1:1", "services:",
             "  portfolio:", "    port: 8000", "    template: portfolio"]
    if web is not None:
        lines += ["  web:"] + [f"    {key}: {value if not isinstance(value, list) else '[' + ', '.join(value) + ']'}"
                               for key, value in web.items()]
    (root / "ecosystem.yaml").write_text("\n".join(lines) + "\n")
    env = root / ".env"
    if not env.exists():
        env.write_text(f"POSTGRES_PASSWORD={pg.password}\n")
    return Workspace(root)


def objects(pg) -> tuple[set[str], set[str]]:
    with psycopg.connect(pg.conninfo(dbname="postgres"), autocommit=True) as conn:
        roles = {row[0] for row in conn.execute("select rolname from pg_roles where rolname like '%\\_user'")}
        databases = {row[0] for row in conn.execute("select datname from pg_database where datname like '%\\_db'")}
    return roles, databases


def postgres_plan(workspace) -> list[str]:
    provider = PostgresProvider(workspace)
    try:
        return [str(change) for change in make_plan([provider]).changes]
    finally:
        provider.close()


def test_a_web_app_has_no_role_and_no_database(clean, tmp_path):
    workspace = write(tmp_path, clean, WEB)
    applied = provision(workspace)
    assert not [change for change in applied if "web" in change], applied
    assert objects(clean) == ({"portfolio_user"}, {"portfolio_db"})
    assert "WEB_DB_PASSWORD" not in (tmp_path / ".env").read_text()
    assert postgres_plan(Workspace(tmp_path)) == []
    # removing the web app leaves PostgreSQL as it is: nothing to plan there
    assert postgres_plan(write(tmp_path, clean, None)) == []
    assert objects(clean) == ({"portfolio_user"}, {"portfolio_db"})


def test_the_role_an_older_ecoctl_made_for_a_web_app_goes_and_its_database_stays(clean, tmp_path):
    provision(write(tmp_path, clean, {"port": 3000, "template": "portfolio-web"}))  # as a service: a role, a database
    assert objects(clean) == ({"portfolio_user", "web_user"}, {"portfolio_db", "web_db"})
    workspace = write(tmp_path, clean, WEB)
    assert postgres_plan(workspace) == [
        "- delete role web_user (a web app needs no database role; its grants are revoked; database web_db "
        "kept (pass --drop-data to delete it))"]
    provision(workspace)
    roles, databases = objects(clean)
    assert roles == {"portfolio_user"} and "web_db" in databases
    assert postgres_plan(Workspace(tmp_path)) == []
