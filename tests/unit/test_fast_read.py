"""Plans read files with the fast safe loader (C parser) and parse round-trip only to write: the
plans, jobs and models are exactly those the round-trip reading gave."""

from __future__ import annotations

import pytest

from ecoctl.clients import prometheus_config
from ecoctl.clients.prometheus_config import PrometheusConfig
from ecoctl.commands.init import init_ecosystem
from ecoctl.model import EcosystemFile
from ecoctl.plan import apply_plan, make_plan
from ecoctl.providers import compose as compose_module
from ecoctl.providers import load_providers
from ecoctl.support import yaml as yaml_support
from ecoctl.workspace import Workspace
from tests.helpers import ensure_secrets, free_port
from tests.unit.test_prometheus_config import HAND_WRITTEN


def test_the_c_parser_is_installed_and_used():
    used, data = yaml_support._with_c_parser("a: [1, 'b']\n", "get_single_data")
    assert used and data == {"a": [1, "b"]}
    # libyaml refuses a plain `host:port` in a flow list, YAML 1.2 (and Prometheus) accept it
    assert yaml_support._with_c_parser("t: [old-host:8080]\n", "get_single_data") == (False, None)
    assert yaml_support.fast_load("f.yml", "t: [old-host:8080]\n") == {"t": ["old-host:8080"]}


@pytest.fixture
def pure_only(monkeypatch):
    """Reading as before: no C parser (the round-trip composer and the pure safe loader)."""
    def use_pure():
        monkeypatch.setattr(yaml_support, "_with_c_parser", lambda text, method: (False, None))
    return use_pure


def drifted_workspace(root) -> Workspace:
    init_ecosystem(root, runtime="local", without=("web",))
    spec = root / "ecosystem.yaml"
    text = spec.read_text().replace("prometheus_port: 9090", f"prometheus_port: {free_port()}")
    text += "".join(f"  svc{index}:\n    port: {9100 + index}\n" for index in range(6))
    text += "  apart:\n    port: 9300\n    pattern: separate\n"
    spec.write_text(text)
    workspace = Workspace(root)
    ensure_secrets(workspace)
    providers = load_providers(workspace, ("files", "compose", "prometheus", "grafana"))
    apply_plan(providers, make_plan(providers))
    # a user's hand edits: comments, quoting styles, a changed port and image, a removed variable,
    # a service of their own, YAML 1.2 scalars that YAML 1.1 reads differently
    compose = root / "compose.yaml"
    text = compose.read_text()
    text = text.replace("127.0.0.1:9101:9101", "127.0.0.1:9111:9101", 1)
    text = text.replace("restart: unless-stopped", "restart: 'no'  # mine", 1)
    text = text.replace("init: true", "init: yes", 1)
    text += ("  mine:   # the user's own service\n    image: busybox\n    command: [sleep, 1:30]\n"
             "    environment: {FLAG: on, MODE: 0777, RATE: 1e3}\n")
    compose.write_text("# edited by hand\n" + text)
    separate = root / "services/apart/compose.yaml"
    separate.write_text(separate.read_text().replace("init: true", "init: false"))
    (root / "ecosystem.yaml").write_text((root / "ecosystem.yaml").read_text()
                                         .replace("  svc5:\n    port: 9105\n", "")
                                         + "  late:\n    port: 9400\n")
    return Workspace(root)


def plan_of(root, systems) -> list:
    providers = load_providers(Workspace(root), systems)
    return [(change, change.payload) for change in make_plan(providers).changes]


def test_compose_plan_is_the_round_trip_plan(tmp_path, monkeypatch, pure_only):
    root = tmp_path / "eco"
    drifted_workspace(root)
    fast = plan_of(root, ("compose", "prometheus", "grafana"))
    assert any(change.kind == "compose service" and change.action == "update" for change, _ in fast)
    assert any(change.action == "delete" for change, _ in fast) and any(c.name == "late" for c, _ in fast)
    monkeypatch.setattr(compose_module, "fast_load", yaml_support.parse_yaml)  # compose.yaml read round-trip
    pure_only()
    assert plan_of(root, ("compose", "prometheus", "grafana")) == fast


@pytest.mark.parametrize("text", [
    HAND_WRITTEN,
    "scrape_configs:\n- job_name: loyalty\n  scrape_timeout: 5s\n  static_configs:\n"
    "  - targets: [old-host:8080]\n    labels: {team: points}\n",
    "global:\n  scrape_interval: 15s\nscrape_configs:\n  -\n    job_name: a\n    static_configs:\n"
    "      - targets:\n          - 'a:1'\n    relabel_configs:\n      - source_labels: [x]\n"
    "        regex: |\n          multi\n          line\n\n  - job_name: b  # managed by ecoctl\n"
    "    static_configs: [{targets: ['b:2']}]\n",
])
def test_prometheus_jobs_and_spans_are_the_round_trip_ones(text, pure_only):
    fast = PrometheusConfig(text)
    pure_only()
    slow = PrometheusConfig(text)
    assert fast.jobs == slow.jobs and fast._spans == slow._spans
    assert {name: job.extras for name, job in fast.jobs.items()} == \
        {name: job.extras for name, job in slow.jobs.items()}
    for name in slow.jobs:
        assert PrometheusConfig(text).without_job(name) == slow.without_job(name)


def test_ecosystem_model_is_the_round_trip_model(tmp_path, pure_only):
    root = tmp_path / "eco"
    drifted_workspace(root)
    fast = EcosystemFile.load(root / "ecosystem.yaml")
    assert fast._document is None  # not parsed round-trip until edited
    round_trip = yaml_support.parse_yaml("ecosystem.yaml", (root / "ecosystem.yaml").read_text())
    assert fast.model == EcosystemFile.validate(root / "ecosystem.yaml", round_trip)
    fast.update(lambda document: document["services"]["late"].__setitem__("port", 9401))
    assert "  late:\n    port: 9401\n" in (root / "ecosystem.yaml").read_text()
    assert "# ecoctl ecosystem" in (root / "ecosystem.yaml").read_text()  # comments kept


def test_a_bad_value_still_names_its_line(tmp_path):
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text().replace("port: 8000", "port: eighty"))
    with pytest.raises(Exception) as caught:
        EcosystemFile.load(spec)
    line = next(number for number, text in enumerate(spec.read_text().splitlines(), 1) if "eighty" in text)
    assert f"ecosystem.yaml:{line}:" in str(caught.value) and "port" in str(caught.value)
