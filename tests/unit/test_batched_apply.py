"""File providers apply a plan's changes in memory and write each file once: the files are the
same as applying the changes one by one, and a change is reported done only after its write."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ecoctl.clients.prometheus_config import PrometheusConfig, ScrapeJob
from ecoctl.commands.init import init_ecosystem
from ecoctl.errors import EcoctlError
from ecoctl.plan import apply_plan, make_plan
from ecoctl.providers import load_providers
from ecoctl.workspace import Workspace
from tests.helpers import ensure_secrets, free_port
from tests.unit.test_prometheus_config import HAND_WRITTEN

FILE_SYSTEMS = ("files", "compose", "prometheus", "grafana")


def job(name: str, target: str) -> ScrapeJob:
    return ScrapeJob(name, (target,))


@pytest.mark.parametrize("text", [HAND_WRITTEN, "", "global:\n  scrape_interval: 15s\nscrape_configs: []\n",
                                  "scrape_configs:\n"])
def test_with_jobs_is_with_job_one_by_one(text):
    jobs = [job("loyalty", "loyalty:8080"), job("portfolio", "portfolio:8001"),
            job("billing", "billing:8090"), job("node", "node:9101")]
    one_by_one = text
    for each in jobs:
        one_by_one = PrometheusConfig(one_by_one).with_job(each)
    assert PrometheusConfig(text).with_jobs(jobs) == one_by_one
    assert PrometheusConfig(text).with_jobs([]) == text


def test_without_jobs_is_without_job_one_by_one():
    text = PrometheusConfig(HAND_WRITTEN).with_jobs([job("loyalty", "l:1"), job("billing", "b:2")])
    one_by_one = text
    for name in ("portfolio", "billing", "absent"):
        one_by_one = PrometheusConfig(one_by_one).without_job(name)
    assert PrometheusConfig(text).without_jobs(["portfolio", "billing", "absent"]) == one_by_one
    assert set(PrometheusConfig(one_by_one).jobs) == {"prometheus", "node", "loyalty"}


def ecosystem(root: Path, services: int, env_from: Path | None = None, port: int | None = None) -> Workspace:
    init_ecosystem(root, runtime="local", without=("web",))
    spec = root / "ecosystem.yaml"
    text = spec.read_text().replace("prometheus_port: 9090", f"prometheus_port: {port or free_port()}")
    text += "".join(f"  svc{index}:\n    port: {9100 + index}\n" for index in range(services))
    text += "  apart:\n    port: 9300\n    pattern: separate\n"
    spec.write_text(text)
    if env_from is not None:
        shutil.copy(env_from / ".env", root / ".env")
    return Workspace(root)


def tree(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file() and ".ecoctl" not in path.parts}


def test_batched_apply_writes_what_one_by_one_writes(tmp_path):
    port = free_port()  # nothing listens: no reload
    batched_ws = ecosystem(tmp_path / "a" / "eco", 12, port=port)
    ensure_secrets(batched_ws)
    single_ws = ecosystem(tmp_path / "b" / "eco", 12, env_from=tmp_path / "a" / "eco", port=port)
    ensure_secrets(single_ws)

    providers = load_providers(batched_ws, FILE_SYSTEMS)
    plan = make_plan(providers)
    reported = []
    done = apply_plan(providers, plan, on_change=reported.append)
    assert done.changes == plan.changes == reported
    assert {change.system for change in plan.changes} == set(FILE_SYSTEMS)

    providers = load_providers(single_ws, FILE_SYSTEMS)
    by_system = {provider.name: provider for provider in providers}
    for change in make_plan(providers).changes:
        by_system[change.system].apply(change)

    batched, single = tree(batched_ws.root), tree(single_ws.root)
    assert batched.keys() == single.keys()
    assert {path for path in batched if batched[path] != single[path]} == set()
    assert make_plan(load_providers(Workspace(batched_ws.root), FILE_SYSTEMS)).changes == []


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not on PATH (apt-get install prometheus)")
def test_a_refused_write_reports_its_changes_not_applied(tmp_path):
    ws = ecosystem(tmp_path / "eco", 3)
    ensure_secrets(ws)
    apply_plan(load_providers(ws, ("files",)), make_plan(load_providers(ws, ("files",))))
    path = ws.root / "monitoring/prometheus/prometheus.yml"
    broken = path.read_text().replace("scrape_interval: 15s", "scrape_interval: 15x", 1)
    assert broken != path.read_text()
    path.write_text(broken)

    providers = load_providers(ws, ("compose", "prometheus", "grafana"))
    plan = make_plan(providers)
    reported = []
    with pytest.raises(EcoctlError) as caught:
        apply_plan(providers, plan, on_change=reported.append)
    prometheus_changes = [change for change in plan.changes if change.system == "prometheus"]
    # prometheus itself (at the port set after init), portfolio, svc0..2, apart; each service's rules
    assert [change.kind for change in prometheus_changes] == ["scrape job"] * 6 + ["alert rules"] * 5
    assert [change.system for change in reported] == ["compose"] * len(reported) and reported
    assert caught.value.not_applied == [c for c in plan.changes if c.system in ("prometheus", "grafana")]
    message = str(caught.value)
    assert "promtool" in message and "not applied: update scrape job prometheus" in message and "\n" not in message
    assert not (ws.root / "monitoring/prometheus/rules").exists()  # nothing is written when the check fails
    assert path.read_text() == broken
    assert not (ws.root / "monitoring/grafana/dashboards/svc0.json").exists()
