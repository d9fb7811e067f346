"""The prometheus provider against real files: byte-exact edits of a hand-written prometheus.yml,
drift, ownership, and promtool refusing a broken file (Prometheus itself is not running here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ecoctl.errors import EcoctlError, UsageError
from ecoctl.plan import Options, make_plan
from tests.helpers import converge_providers
from tests.helpers import free_port
from ecoctl.clients.prometheus_config import PrometheusConfig, ScrapeJob
from ecoctl.providers.prometheus import PrometheusProvider
from ecoctl.workspace import Workspace

HAND_WRITTEN = """\
# Prometheus for the demo ecosystem
global:
  scrape_interval: 15s   # default for every job
  evaluation_interval: 15s

# rules live beside this file
rule_files:
  - rules/*.yml

scrape_configs:
  # Prometheus itself
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]

  # my own exporter, not a service: ecoctl must leave it alone
  - static_configs:   # keys in an unusual order
      - targets:
          - 'node:9100'
    job_name: node    # trailing comment
    scrape_interval: 1m

  # the core service
  - job_name: portfolio  # managed by ecoctl
    static_configs:
      - targets: ['portfolio:8000']
    metrics_path: '/metrics'
    # a comment inside the job
    scrape_interval: 15s

    # a comment after the last job, before the end
# the end
"""

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not on PATH (apt-get install prometheus)")


def make_workspace(root: Path, services: dict[str, dict], runtime: str = "docker",
                   prometheus_text: str | None = HAND_WRITTEN) -> Workspace:
    lines = ["name: demo", f"runtime: {runtime}", "core:", "  monitoring:",
             f"    prometheus_port: {free_port()}  # nothing listens: reload is skipped",
             "services:" if services else "services: {}"]
    for name, spec in services.items():
        lines.append(f"  {name}:")
        lines.extend(f"    {key}: {value}" for key, value in spec.items())
    (root / "ecosystem.yaml").write_text("\n".join(lines) + "\n")
    if prometheus_text is not None:
        path = root / "monitoring/prometheus/prometheus.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(prometheus_text)
    return Workspace(root)


PORTFOLIO = {"template": "portfolio", "port": 8000}


def config_path(ws: Workspace) -> Path:
    return ws.root / "monitoring/prometheus/prometheus.yml"


def promtool_ok(path: Path) -> None:
    if shutil.which("promtool"):
        result = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def plan_lines(ws: Workspace) -> list[str]:
    """The plan's scrape job changes (each service's alerting rules: test_prometheus_rules.py)."""
    return [str(change) for change in make_plan([PrometheusProvider(ws)]).changes if change.kind == "scrape job"]


def full_plan(ws: Workspace) -> list[str]:
    return [str(change) for change in make_plan([PrometheusProvider(ws)]).changes]


def test_add_update_remove_touch_only_the_job(tmp_path):
    ws = make_workspace(tmp_path, {"portfolio": PORTFOLIO, "loyalty": {"port": 8080}})
    path = config_path(ws)
    assert plan_lines(ws) == ["+ create scrape job loyalty (target loyalty:8080)"]

    converge_providers([PrometheusProvider(ws)])
    added = path.read_text()
    job = PrometheusConfig(added).job_text("loyalty")
    assert job == ("  - job_name: loyalty  # managed by ecoctl\n"
                   "    static_configs:\n"
                   "      - targets: ['loyalty:8080']\n"
                   "    metrics_path: '/metrics'\n"
                   "    scrape_interval: 15s\n")
    assert added.replace(job, "", 1) == HAND_WRITTEN  # every other byte is the user's
    promtool_ok(path)
    assert full_plan(ws) == []

    ws.ecosystem_file.update(lambda doc: doc["services"]["loyalty"].__setitem__("port", 8081))
    assert plan_lines(ws) == ["~ update scrape job loyalty (targets loyalty:8080 -> loyalty:8081)"]
    converge_providers([PrometheusProvider(ws)])
    updated = path.read_text()
    assert updated == added.replace("'loyalty:8080'", "'loyalty:8081'")
    promtool_ok(path)

    ws.ecosystem_file.update(lambda doc: doc["services"].pop("loyalty"))
    assert plan_lines(ws) == ["- delete scrape job loyalty (service removed)"]
    converge_providers([PrometheusProvider(ws)])
    assert path.read_text() == HAND_WRITTEN
    promtool_ok(path)
    assert full_plan(ws) == []


def test_update_of_a_job_in_the_middle_keeps_the_rest_byte_for_byte(tmp_path):
    ws = make_workspace(tmp_path, {"portfolio": PORTFOLIO, "loyalty": {"port": 8080}})
    converge_providers([PrometheusProvider(ws)])
    added = config_path(ws).read_text()
    old_job = PrometheusConfig(added).job_text("portfolio")  # now between node and loyalty
    before, after = added.split(old_job)
    assert "job_name: node" in before and "job_name: loyalty" in after

    ws.ecosystem_file.update(lambda doc: doc["services"]["portfolio"].__setitem__("port", 8001))
    converge_providers([PrometheusProvider(ws)])
    new = config_path(ws).read_text()
    assert new.startswith(before) and new.endswith(after)
    new_job = new[len(before):len(new) - len(after)]
    assert "'portfolio:8001'" in new_job and "# managed by ecoctl" in new_job
    assert "# a comment inside the job" not in new_job  # the changed job is rewritten whole
    promtool_ok(config_path(ws))


def test_user_jobs_are_never_deleted_and_removed_managed_job_is_drift(tmp_path):
    # no services at all: only the marked portfolio job goes; prometheus and node are the user's
    ws = make_workspace(tmp_path, {})
    assert plan_lines(ws) == ["- delete scrape job portfolio (service removed)"]

    ws = make_workspace(tmp_path, {"portfolio": PORTFOLIO})
    assert plan_lines(ws) == []
    text = config_path(ws).read_text()
    config_path(ws).write_text(text.replace(PrometheusConfig(text).job_text("portfolio"), ""))
    assert plan_lines(ws) == ["+ create scrape job portfolio (target portfolio:8000)"]
    converge_providers([PrometheusProvider(ws)])
    assert plan_lines(ws) == []
    assert set(PrometheusConfig.load(config_path(ws)).jobs) == {"prometheus", "node", "portfolio"}


def test_user_job_named_like_a_service_is_adopted_but_keeps_its_extras(tmp_path):
    text = ("scrape_configs:\n"
            "- job_name: loyalty\n"
            "  scrape_timeout: 5s\n"
            "  static_configs:\n"
            "  - targets: [old-host:8080]\n"
            "    labels: {team: points}\n")
    ws = make_workspace(tmp_path, {"loyalty": {"port": 8080}}, prometheus_text=text)
    assert plan_lines(ws)[1:] == ["~ update scrape job loyalty (targets old-host:8080 -> loyalty:8080; "
                              "metrics_path None -> /metrics; scrape_interval None -> 15s)"]
    converge_providers([PrometheusProvider(ws)])
    job = PrometheusConfig.load(config_path(ws)).jobs["loyalty"]
    assert job.managed and job.targets == ("loyalty:8080",)
    assert job.extras == {"scrape_timeout": "5s"} and job.labels == {"team": "points"}
    assert config_path(ws).read_text().startswith(
        "rule_files:\n  - rules/*.yml\n\nscrape_configs:\n- job_name: loyalty  # managed")
    promtool_ok(config_path(ws))
    assert full_plan(ws) == []
    # unmarked jobs are the user's once the service is gone; this one is ecoctl's now
    ws.ecosystem_file.update(lambda doc: doc["services"].pop("loyalty"))
    assert plan_lines(ws) == ["- delete scrape job loyalty (service removed)"]


@pytest.mark.parametrize(("runtime", "spec", "target"), [
    ("docker", {"port": 8080}, "loyalty:8080"),
    ("docker", {"port": 8080, "pattern": "separate"}, "loyalty:8080"),
    ("local", {"port": 8080}, "127.0.0.1:8080"),
    ("local", {"port": 8080, "pattern": "external", "host": "10.1.2.3"}, "10.1.2.3:8080"),
    ("docker", {"port": 9000, "pattern": "external", "host": "loyalty.example.com"},
     "loyalty.example.com:9000"),
])
def test_scrape_target_follows_runtime_and_pattern(tmp_path, runtime, spec, target):
    ws = make_workspace(tmp_path, {"loyalty": spec}, runtime=runtime, prometheus_text=None)
    port = ws.ecosystem.core.monitoring.prometheus_port
    itself = f"127.0.0.1:{port}" if runtime == "local" else "localhost:9090"
    assert plan_lines(ws) == [f"+ create scrape job prometheus (target {itself})",
                              f"+ create scrape job loyalty (target {target})"]


def test_missing_or_skeletal_file_is_created_valid(tmp_path):
    ws = make_workspace(tmp_path, {"portfolio": PORTFOLIO, "loyalty": {"port": 8080}}, prometheus_text=None)
    assert PrometheusProvider(ws).read().jobs == {}
    converge_providers([PrometheusProvider(ws)])
    assert set(PrometheusConfig.load(config_path(ws)).jobs) == {"prometheus", "portfolio", "loyalty"}
    promtool_ok(config_path(ws))
    for text in ("", "# just a comment\n", "global:\n  scrape_interval: 30s\nscrape_configs: []  # none yet",
                 "scrape_configs:\n", "scrape_configs: ~\nrule_files: []\n"):
        config_path(ws).write_text(text)
        converge_providers([PrometheusProvider(ws)])
        new = config_path(ws).read_text()
        assert set(PrometheusConfig(new).jobs) == {"prometheus", "portfolio", "loyalty"}, (text, new)
        if text.startswith("#"):
            assert new.startswith(text)
        promtool_ok(config_path(ws))
        assert full_plan(ws) == [], (text, new)


def test_invalid_yaml_is_one_line_usage_error(tmp_path):
    ws = make_workspace(tmp_path, {"portfolio": PORTFOLIO}, prometheus_text="scrape_configs:\n  - [unclosed\n")
    with pytest.raises(UsageError) as caught:
        PrometheusProvider(ws).read()
    assert "prometheus.yml:" in str(caught.value) and "\n" not in str(caught.value)


@needs_promtool
def test_broken_config_is_refused_and_old_file_kept(tmp_path):
    broken = HAND_WRITTEN.replace("scrape_interval: 15s   # default", "scrape_interval: 15x   # default")
    ws = make_workspace(tmp_path, {"portfolio": PORTFOLIO, "loyalty": {"port": 8080}},
                        prometheus_text=broken)
    path = config_path(ws)
    stat = path.stat()
    with pytest.raises(EcoctlError) as caught:
        converge_providers([PrometheusProvider(ws)])
    message = str(caught.value)
    assert "promtool" in message and '"15x"' in message and str(path) in message
    assert "\n" not in message and ".check-" not in message
    assert path.read_text() == broken and path.stat().st_ino == stat.st_ino
    assert [p.name for p in path.parent.iterdir()] == ["prometheus.yml"]  # no temp file, no rule file


@needs_promtool
def test_duplicate_job_written_by_hand_is_refused(tmp_path):
    duplicate = HAND_WRITTEN + "  - job_name: node\n    static_configs:\n      - targets: ['x:1']\n"
    ws = make_workspace(tmp_path, {"portfolio": PORTFOLIO, "loyalty": {"port": 8080}},
                        prometheus_text=duplicate)
    with pytest.raises(EcoctlError, match="multiple scrape configs"):
        converge_providers([PrometheusProvider(ws)])
    assert config_path(ws).read_text() == duplicate


def test_render_parses_back(tmp_path):
    job = ScrapeJob("loyalty-points", ("[::1]:8080", "it's:1"), labels={"team": "a b"},
                    extras={"scrape_timeout": "5s", "relabel_configs": [{"target_label": "x", "replacement": "y"}]})
    text = PrometheusConfig("scrape_configs:\n").with_job(job)
    back = PrometheusConfig(text).jobs["loyalty-points"]
    assert back.same_settings(job) and back.labels == job.labels and back.extras == job.extras
