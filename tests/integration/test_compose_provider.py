"""The compose provider: compose files follow ecosystem.yaml, edited round-trip (real files)."""

import json
import subprocess

from ecoctl.commands.reconcile import converge, plan_workspace
from ecoctl.commands.init import init_ecosystem
from ecoctl.commands.services import ServiceRequest, add_service
from ecoctl.workspace import Workspace
from tests.helpers import compose_binary


def compose_config(root, *files):
    args = [arg for file in files or ("compose.yaml",) for arg in ("-f", file)]
    result = subprocess.run([compose_binary(), "--project-directory", str(root), "--env-file", str(root / ".env"),
                             *args, "config", "--format", "json"], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_core_settings_follow_ecosystem_yaml_and_comments_survive(tmp_path):
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    compose = root / "compose.yaml"
    compose.write_text(compose.read_text().replace("  redis:\n", "  # our cache, keep it small\n  redis:\n", 1))
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text().replace("    port: 5432", "    port: 15432")
                    .replace("images: {}", "images: {postgres: registry.example.com/postgres:16}"))
    plan = plan_workspace(Workspace(root), only={"compose"})
    assert [str(c) for c in plan.changes] == [
        "~ update compose image postgres (postgres:16 -> registry.example.com/postgres:16)",
        "~ update compose ports postgres (127.0.0.1:5432:5432 -> 127.0.0.1:15432:5432)"]
    converge(Workspace(root), only={"compose"})
    assert plan_workspace(Workspace(root), only={"compose"}).empty
    assert "  # our cache, keep it small\n  redis:\n" in compose.read_text()
    postgres = compose_config(root)["services"]["postgres"]
    assert postgres["image"] == "registry.example.com/postgres:16"
    assert postgres["ports"][0]["published"] == "15432" and postgres["ports"][0]["host_ip"] == "127.0.0.1"


def test_redis_of_an_older_compose_file_gets_the_password(tmp_path):
    """A compose.yaml written before Redis had a password is brought to `--requirepass`, and the
    services' REDIS_URL carries the same password (as .env holds it)."""
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="docker", without=("web",))
    compose = root / "compose.yaml"
    text = compose.read_text()
    start = text.index("  redis:\n")
    block = text[start:text.index("\n\n", start)]
    old = "\n".join(line for line in block.splitlines()
                    if "requirepass" not in line and "REDISCLI_AUTH" not in line
                    and line.strip() not in ("environment:",) and not line.strip().startswith("#"))
    old = old.replace('"--protected-mode", "no",', '"--protected-mode", "no"]')
    compose.write_text(text.replace(block, old))
    plan = plan_workspace(Workspace(root), only={"compose"})
    assert sorted(c.kind for c in plan.changes) == ["compose command", "compose environment"]
    converge(Workspace(root), only={"compose"})
    assert plan_workspace(Workspace(root), only={"compose"}).empty
    config = compose_config(root)["services"]
    password = Workspace(root).env.get("REDIS_PASSWORD")
    assert config["redis"]["command"][-2:] == ["--requirepass", password]
    assert config["redis"]["environment"]["REDISCLI_AUTH"] == password
    assert config["portfolio"]["environment"]["REDIS_URL"] == f"redis://:{password}@redis:6379/0"


def test_patterns_compose_separate_external(tmp_path):
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="docker", without=("web",))
    workspace = Workspace(root)
    for name, port, pattern, host in (("loyalty", 8080, "compose", None), ("analytics", 8090, "separate", None),
                                      ("bot", 8100, "external", "10.0.2.50")):
        add_service(workspace, ServiceRequest(name, port=port, pattern=pattern, host=host), apply=False)
    main = compose_config(root)["services"]
    assert {"loyalty", "portfolio"} <= set(main) and "analytics" not in main and "bot" not in main
    assert main["loyalty"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert main["loyalty"]["networks"].keys() == {"portfolio-network"}
    assert "${" not in json.dumps(main) and main["loyalty"]["environment"]["DATABASE_NAME"] == "loyalty_db"
    separate = compose_config(root, "services/analytics/compose.yaml")
    assert separate["networks"]["portfolio-network"]["external"] is True
    assert separate["services"]["analytics"]["environment"]["DATABASE_USER"] == "analytics_user"
    assert not (root / "services/bot/compose.yaml").exists()
    # removing a service removes only its entry; a user's own service stays
    compose = root / "compose.yaml"
    compose.write_text(compose.read_text().replace("networks:\n  portfolio-network:\n",
                                                   "  mailhog:\n    image: mailhog/mailhog\n\nnetworks:\n  portfolio-network:\n", 1))
    workspace.ecosystem_file.update(lambda doc: (doc["services"].pop("loyalty"), doc["services"].pop("analytics")))
    converge(Workspace(root), only={"compose"})
    main = compose_config(root)["services"]
    assert "loyalty" not in main and "mailhog" in main
    assert not (root / "services/analytics/compose.yaml").exists()


def test_alertmanager_switched_on_and_off_in_ecosystem_yaml(tmp_path):
    """An optional core service switched on after init gets its whole compose entry (and its data
    volume); switched off, the entry goes."""
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="docker", without=("web",))
    assert "alertmanager" not in compose_config(root)["services"]
    Workspace(root).ecosystem_file.update(lambda doc: doc["core"]["monitoring"].__setitem__(
        "alertmanager", {"enabled": True, "port": 19093}))
    plan = plan_workspace(Workspace(root), only={"compose"})
    assert [str(change) for change in plan.changes] == [
        "+ create compose service alertmanager (switched on in ecosystem.yaml)"]
    converge(Workspace(root), only={"compose"})
    assert plan_workspace(Workspace(root), only={"compose"}).empty
    config = compose_config(root)
    entry = config["services"]["alertmanager"]
    assert [port["published"] for port in entry["ports"]] == ["19093"]
    assert "alertmanager_data" in config["volumes"]
    Workspace(root).ecosystem_file.update(lambda doc: doc["core"]["monitoring"]["alertmanager"].__setitem__(
        "enabled", False))
    plan = plan_workspace(Workspace(root), only={"compose"})
    assert [str(change) for change in plan.changes] == [
        "- delete compose service alertmanager (core.monitoring.alertmanager.enabled is not true)"]
    converge(Workspace(root), only={"compose"})
    assert "alertmanager" not in compose_config(root)["services"]


def test_a_contract_variable_no_longer_given_leaves_the_entry_and_the_teams_own_stay(tmp_path):
    """A service's entry loses a contract variable the contract stopped giving it (here: a web app
    that no longer calls it, so no OIDC_ACCEPTED_CLIENTS); the team's own variables stay."""
    import yaml

    root = tmp_path / "eco"
    init_ecosystem(root, runtime="docker", without=("web",))
    add_service(Workspace(root), ServiceRequest("loyalty", port=8101), apply=False)
    converge(Workspace(root), only={"compose"})
    compose = root / "compose.yaml"
    entry = "      OIDC_AUDIENCE:"
    text = compose.read_text()
    start = text.index("  loyalty:\n")
    at = text.index(entry, start)
    compose.write_text(text[:at] + "      OIDC_ACCEPTED_CLIENTS: '[]'\n      TEAM_FLAG: 'on'\n"
                       "      DATABASE_READ_HOST_FILE: /run/secrets/x\n" + text[at:])
    plan = plan_workspace(Workspace(root), only={"compose"})
    assert [str(c) for c in plan.changes] == ["~ update compose service loyalty (environment differ)"]
    converge(Workspace(root), only={"compose"})
    assert plan_workspace(Workspace(root), only={"compose"}).empty
    environment = yaml.safe_load(compose.read_text())["services"]["loyalty"]["environment"]
    assert environment["TEAM_FLAG"] == "on"
    assert "OIDC_ACCEPTED_CLIENTS" not in environment and "DATABASE_READ_HOST_FILE" not in environment
