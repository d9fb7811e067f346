"""Providers never ask which runtime runs: what they need of it comes in as a `RuntimeView` (where
the stack runs, how its Prometheus reloads), made by the command; by default, from the model."""

from __future__ import annotations

import pytest

from ecoctl.commands.init import init_ecosystem
from ecoctl.commands.reconcile import Reconciliation, runtime_view
from ecoctl.model import ServiceSpec
from ecoctl.plan import Options, RuntimeView, make_plan
from ecoctl.providers.files import FilesProvider
from ecoctl.providers.prometheus import PrometheusProvider, scrape_target
from ecoctl.workspace import Workspace
from tests.helpers import converge_providers
from tests.unit.test_prometheus_config import PORTFOLIO, make_workspace

SCRAPE_CASES = [
    ({"port": 8080}, True, "loyalty:8080"),
    ({"port": 8080, "pattern": "separate"}, True, "loyalty:8080"),
    ({"port": 8080}, False, "127.0.0.1:8080"),
    ({"port": 8080, "pattern": "external", "host": "10.1.2.3"}, False, "10.1.2.3:8080"),
    ({"port": 9000, "pattern": "external", "host": "loyalty.example.com"}, True, "loyalty.example.com:9000"),
    ({"port": 9000, "pattern": "external", "host": "fd00::1"}, True, "[fd00::1]:9000"),
]


@pytest.mark.parametrize("spec, in_containers, target", SCRAPE_CASES)
def test_scrape_target_follows_where_the_stack_runs(spec, in_containers, target):
    assert scrape_target("loyalty", ServiceSpec.from_data(spec), in_containers) == target


@pytest.mark.parametrize("runtime, in_containers", [("local", False), ("docker", True), ("swarm", True)])
def test_the_view_comes_from_the_model_unless_handed_in(tmp_path, runtime, in_containers):
    ws = make_workspace(tmp_path, {"loyalty": {"port": 8080}}, runtime=runtime, prometheus_text=None)
    assert PrometheusProvider(ws).runtime == RuntimeView(in_containers)
    assert runtime_view(ws).in_containers is in_containers and runtime_view(ws).reload_prometheus is not None
    handed = RuntimeView(not in_containers)
    expected = "loyalty:8080" if handed.in_containers else "127.0.0.1:8080"
    itself = "localhost:9090" if handed.in_containers else f"127.0.0.1:{ws.ecosystem.core.monitoring.prometheus_port}"
    assert [str(change) for change in make_plan([PrometheusProvider(ws, runtime=handed)]).changes
            if change.kind == "scrape job"] == [f"+ create scrape job prometheus (target {itself})",
                                                f"+ create scrape job loyalty (target {expected})"]


@pytest.mark.parametrize("in_containers, target", [(False, "127.0.0.1:{port}"), (True, "localhost:9090")])
def test_prometheus_finds_itself_where_the_stack_runs(tmp_path, in_containers, target):
    init_ecosystem(tmp_path / "eco", runtime="local", without=("web",))
    ws = Workspace(tmp_path / "eco")
    (ws.root / "monitoring/prometheus/prometheus.yml").unlink()
    [change] = make_plan([FilesProvider(ws, runtime=RuntimeView(in_containers))]).changes
    text = change.payload.contents["monitoring/prometheus/prometheus.yml"].decode()
    port = ws.ecosystem.core.monitoring.prometheus_port
    assert f"targets: ['{target.format(port=port)}']" in text


@pytest.mark.parametrize("reload, calls", [(True, 1), (False, 0)])
def test_prometheus_reloads_through_the_function_handed_in(tmp_path, reload, calls):
    ws = make_workspace(tmp_path, {"portfolio": PORTFOLIO, "loyalty": {"port": 8080}})
    reloads = []
    view = RuntimeView(True, lambda: reloads.append("reload") or False)  # False: no Prometheus answered
    done = converge_providers([PrometheusProvider(ws, Options(reload=reload), view)])
    assert [change.name for change in done.changes] == ["loyalty", "portfolio", "loyalty"] and len(reloads) == calls
    assert [change.kind for change in done.changes] == ["scrape job", "alert rules", "alert rules"]


def test_a_reconciliation_hands_every_provider_the_runtime_view(tmp_path):
    init_ecosystem(tmp_path / "eco", runtime="docker", without=("web",))
    with Reconciliation(Workspace(tmp_path / "eco"), only={"files", "prometheus"}) as reconciliation:
        views = [provider.runtime for provider in reconciliation.providers]
    assert [view.in_containers for view in views] == [True, True]
    assert all(view.reload_prometheus is not None for view in views)
