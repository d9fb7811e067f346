"""Each service's alerting rules (monitoring/prometheus/rules/<service>.yml): generated from
ecosystem.yaml, checked by `promtool check rules`, evaluated by `promtool test rules` (Prometheus's
own rule engine over synthetic series), edited round-trip (the user's comments and rules stay)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ecoctl.clients import prometheus_rules
from ecoctl.errors import EcoctlError
from ecoctl.plan import make_plan
from ecoctl.providers.prometheus import PrometheusProvider
from ecoctl.clients.prometheus_config import PrometheusConfig
from ecoctl.workspace import Workspace
from tests.helpers import converge_providers, free_port
from tests.unit.test_prometheus_config import HAND_WRITTEN, PORTFOLIO, config_path, make_workspace, promtool_ok

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not on PATH (apt-get install prometheus)")
LOYALTY = {"port": 8080, "alerts": "{p95_ms: 300, error_percent: 10, after: 2m}"}


def plan_lines(ws) -> list[str]:
    return [str(change) for change in make_plan([PrometheusProvider(ws)]).changes]


def rules_file(ws, service: str) -> Path:
    return ws.root / "monitoring/prometheus/rules" / f"{service}.yml"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_rules_follow_ecosystem_yaml_and_keep_the_users_edits(tmp_path):
    ws = make_workspace(tmp_path, {"portfolio": PORTFOLIO, "loyalty": LOYALTY})
    assert plan_lines(ws) == [
        "+ create scrape job loyalty (target loyalty:8080)",
        "+ create alert rules portfolio (rules/portfolio.yml: ServiceDown, ServiceErrors, ServiceSlow)",
        "+ create alert rules loyalty (rules/loyalty.yml: ServiceDown, ServiceErrors, ServiceSlow)"]
    converge_providers([PrometheusProvider(ws)])
    assert plan_lines(ws) == []
    path = rules_file(ws, "loyalty")
    text = path.read_text()
    assert text.startswith("# Alerting rules of the loyalty service.")
    rules = prometheus_rules.load(path, "loyalty", {"ServiceDown", "ServiceErrors", "ServiceSlow"}).rules
    assert rules["ServiceDown"]["expr"] == 'up{job="loyalty"} == 0' and rules["ServiceDown"]["for"] == "2m"
    assert rules["ServiceSlow"]["expr"].endswith("> 0.3") and rules["ServiceErrors"]["expr"].endswith("> 0.1")
    assert "> 0.5" in prometheus_rules.load(rules_file(ws, "portfolio"), "portfolio", {"ServiceSlow"}).rules[
        "ServiceSlow"]["expr"]  # the default threshold

    # the user's comment and own rule in ecoctl's file stay, through an update
    mine = text.replace("groups:\n", "groups:\n# our on-call reads these\n", 1).replace(
        "summary: loyalty is slow\n", "summary: loyalty is slow  # the pager shows this\n") + (
        "  - name: mine\n    rules:\n      - alert: Custom  # ours\n        expr: vector(1) > 2\n")
    path.write_text(mine)
    assert plan_lines(ws) == []  # a comment or a rule of the user's is not a difference
    ws.ecosystem_file.update(lambda doc: doc["services"]["loyalty"]["alerts"].__setitem__("p95_ms", 250))
    assert plan_lines(ws) == ["~ update alert rules loyalty (ServiceSlow differ)"]
    converge_providers([PrometheusProvider(ws)])
    updated = path.read_text()
    assert updated == mine.replace("> 0.3", "> 0.25").replace("(threshold 300 ms)", "(threshold 250 ms)")

    # a removed service's rules go; its file stays while it holds the user's rules
    ws.ecosystem_file.update(lambda doc: doc["services"].pop("loyalty"))
    assert [line for line in plan_lines(ws) if "alert rules" in line] == [
        "- delete alert rules loyalty (service removed)"]
    converge_providers([PrometheusProvider(ws)])
    left = path.read_text()
    assert "alert: ServiceDown" not in left and "alert: Custom  # ours" in left and "# our on-call" in left
    assert plan_lines(ws) == []
    path.write_text(text)  # ecoctl's rules only, of a service that is gone: the file goes
    assert [line for line in plan_lines(ws) if "alert rules" in line] == [
        "- delete alert rules loyalty (service removed)"]
    converge_providers([PrometheusProvider(ws)])
    assert not path.exists() and rules_file(ws, "portfolio").exists()


@pytest.mark.parametrize("before, after", [
    ("scrape_configs: []\n", "rule_files:\n  - rules/*.yml\n\nscrape_configs: []\n"),
    ("rule_files: []\nscrape_configs: []\n", "rule_files:\n  - rules/*.yml\nscrape_configs: []\n"),
    ("rule_files: [a.yml]\n", "rule_files:\n  - a.yml\n  - rules/*.yml\n"),
    ("rule_files:\n  # mine\n  - a.yml   # first\n\nscrape_configs: []\n",
     "rule_files:\n  # mine\n  - a.yml   # first\n  - rules/*.yml\n\nscrape_configs: []\n"),
    ("global:\n  scrape_interval: 15s", "global:\n  scrape_interval: 15s\nrule_files:\n  - rules/*.yml\n"),
    ("", "rule_files:\n  - rules/*.yml\n"),
])
def test_prometheus_yml_lists_the_rules_as_a_text_edit(tmp_path, before, after):
    assert prometheus_rules.with_rules_listed(tmp_path / "prometheus.yml", before) == after


def test_rules_listed_in_a_hand_written_file(tmp_path):
    text = HAND_WRITTEN.replace("rule_files:\n  - rules/*.yml\n", "rule_files: []\n")
    ws = make_workspace(tmp_path, {"portfolio": PORTFOLIO}, prometheus_text=text)
    assert plan_lines(ws)[0] == "~ update rule files prometheus.yml (add rules/*.yml to rule_files)"
    converge_providers([PrometheusProvider(ws)])
    assert config_path(ws).read_text() == HAND_WRITTEN and plan_lines(ws) == []


@needs_promtool
def test_a_broken_rule_file_is_refused_with_one_line(tmp_path):
    good, path = tmp_path / "rules" / "a.yml", tmp_path / "rules" / "x.yml"
    with pytest.raises(EcoctlError) as caught:
        prometheus_rules.check_rules({
            good: "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up == 0\n",
            path: "groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: up ==\n"})
    message = str(caught.value)
    assert message.startswith(f"{path}: not written, promtool check rules fails on it: {path}: 5:15:"), message
    assert "parse error" in message and "\n" not in message and not path.parent.exists()
    prometheus_rules.check_rules({good: "groups: []\n"})  # valid: no error


UNIT_TESTS = """\
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - name: a healthy service fires nothing; a stopped one fires ServiceDown after `for`
    interval: 1m
    input_series:
      - series: 'up{{job="loyalty",instance="127.0.0.1:8080"}}'
        values: '1 1 1 1 0 0 0 0 0 0'
      - series: 'http_requests_total{{job="loyalty",status="200"}}'
        values: '0+600x9'
    alert_rule_test:
      - {{eval_time: 3m, alertname: ServiceDown}}
      - {{eval_time: 3m, alertname: ServiceErrors}}
      - {{eval_time: 3m, alertname: ServiceSlow}}
      - {{eval_time: 5m, alertname: ServiceDown}}
      - eval_time: 7m
        alertname: ServiceDown
        exp_alerts:
          - exp_labels: {{severity: critical, service: loyalty, job: loyalty, instance: "127.0.0.1:8080"}}
            exp_annotations:
              summary: loyalty is down
              description: Prometheus has not scraped loyalty at 127.0.0.1:8080 for 2m.
  - name: 5xx over the share, p95 over the threshold
    interval: 1m
    input_series:
      - series: 'http_requests_total{{job="loyalty",status="200"}}'
        values: '0+540x15'
      - series: 'http_requests_total{{job="loyalty",status="500"}}'
        values: '0+60x15'
      - series: 'http_request_duration_seconds_bucket{{job="loyalty",le="0.1"}}'
        values: '0+0x15'
      - series: 'http_request_duration_seconds_bucket{{job="loyalty",le="1"}}'
        values: '0+600x15'
      - series: 'http_request_duration_seconds_bucket{{job="loyalty",le="+Inf"}}'
        values: '0+600x15'
    alert_rule_test:
      - {{eval_time: 7m, alertname: ServiceDown}}
      - eval_time: 9m
        alertname: ServiceErrors
        exp_alerts:
          - exp_labels: {{severity: warning, service: loyalty}}
            exp_annotations:
              summary: loyalty answers 5xx
              description: 10% of loyalty's requests over 5m answered 5xx (threshold 5%).
      - eval_time: 9m
        alertname: ServiceSlow
        exp_alerts:
          - exp_labels: {{severity: warning, service: loyalty}}
            exp_annotations:
              summary: loyalty is slow
              description: loyalty's p95 latency over 5m is 955ms (threshold 300 ms).
"""


@needs_promtool
def test_generated_rules_pass_promtool_check_and_unit_tests(tmp_path):
    ws = make_workspace(tmp_path, {"portfolio": PORTFOLIO, "loyalty": {
        "port": 8080, "alerts": "{p95_ms: 300, error_percent: 5, after: 2m}"}})
    converge_providers([PrometheusProvider(ws)])
    folder = config_path(ws).parent
    checked = promtool("check", "rules", "rules/portfolio.yml", "rules/loyalty.yml", cwd=folder)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (folder / "tests.yml").write_text(UNIT_TESTS.format(rules="rules/loyalty.yml"))
    tested = promtool("test", "rules", "tests.yml", cwd=folder)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout + tested.stderr


def test_alertmanager_when_enabled_gets_its_config_and_prometheus_sends_to_it(tmp_path):
    ws = make_workspace(tmp_path, {"portfolio": PORTFOLIO}, runtime="local")
    converge_providers([PrometheusProvider(ws)])
    assert plan_lines(ws) == []
    config = config_path(ws).read_text()
    port = free_port()
    ws.ecosystem_file.update(lambda doc: doc["core"]["monitoring"].__setitem__(
        "alertmanager", {"enabled": True, "port": port, "webhook_url": "http://127.0.0.1:1/hook"}))
    assert plan_lines(ws) == [
        f"+ create scrape job alertmanager (target 127.0.0.1:{port})",
        f"+ create alerting prometheus.yml (alerts to Alertmanager at 127.0.0.1:{port})",
        "+ create alertmanager config monitoring/alertmanager/alertmanager.yml"]
    converge_providers([PrometheusProvider(ws)])
    assert plan_lines(ws) == []
    text = config_path(ws).read_text()
    block = ("alerting:  # managed by ecoctl\n  alertmanagers:\n    - static_configs:\n"
             f"        - targets: ['127.0.0.1:{port}']\n")
    assert PrometheusConfig(text).without_job("alertmanager") == config.replace(
        "\nscrape_configs:", f"\n{block}\nscrape_configs:", 1)  # a text edit: every other byte stays
    promtool_ok(config_path(ws))
    manager = ws.root / "monitoring/alertmanager/alertmanager.yml"
    assert 'url: "http://127.0.0.1:1/hook"' in manager.read_text()
    if shutil.which("amtool"):
        checked = subprocess.run(["amtool", "check-config", str(manager)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr

    manager.write_text(manager.read_text().replace("4h", "1h"))  # a hand edit is drift, made right again
    assert plan_lines(ws) == ["~ update alertmanager config monitoring/alertmanager/alertmanager.yml "
                              "(regenerated from ecosystem.yaml)"]
    moved = free_port()
    ws.ecosystem_file.update(lambda doc: doc["core"]["monitoring"]["alertmanager"].__setitem__("port", moved))
    assert plan_lines(ws)[:2] == [
        f"~ update scrape job alertmanager (targets 127.0.0.1:{port} -> 127.0.0.1:{moved})",
        f"~ update alerting prometheus.yml (alerts to Alertmanager at 127.0.0.1:{moved})"]
    converge_providers([PrometheusProvider(ws)])
    ws.ecosystem_file.update(lambda doc: doc["core"]["monitoring"]["alertmanager"].__setitem__("enabled", False))
    assert plan_lines(ws) == [
        "- delete scrape job alertmanager (not run by this ecosystem)",
        "- delete alerting prometheus.yml (Alertmanager is not enabled)",
        "- delete alertmanager config monitoring/alertmanager/alertmanager.yml (Alertmanager is not enabled)"]
    converge_providers([PrometheusProvider(ws)])
    assert config_path(ws).read_text() == config and not manager.exists()


def test_the_users_own_alerting_block_is_left_alone(tmp_path):
    own = HAND_WRITTEN + "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['am:9093']\n"
    ws = make_workspace(tmp_path, {"portfolio": PORTFOLIO}, prometheus_text=own)
    ws.ecosystem_file.update(lambda doc: doc["core"]["monitoring"].__setitem__("alertmanager", {"enabled": True}))
    assert [line for line in plan_lines(ws) if "alerting" in line] == []
    ws.ecosystem_file.update(lambda doc: doc["core"]["monitoring"]["alertmanager"].__setitem__("enabled", False))
    assert [line for line in plan_lines(ws) if "alerting" in line] == []


@pytest.mark.parametrize("url", ["ftp://x/hook", "hooks.example.com", "https://"])
def test_a_webhook_url_is_http_with_a_host(tmp_path, url):
    from ecoctl.errors import UsageError

    ws = make_workspace(tmp_path, {"portfolio": PORTFOLIO})
    (ws.root / "ecosystem.yaml").write_text((ws.root / "ecosystem.yaml").read_text().replace(
        "  monitoring:\n", f"  monitoring:\n    alertmanager: {{webhook_url: '{url}'}}\n"))
    with pytest.raises(UsageError, match="webhook_url.*http:// or https://"):
        Workspace(ws.root).ecosystem
