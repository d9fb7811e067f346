"""The grafana provider against real files: one dashboard JSON per service, stable uids, drift."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ecoctl.plan import Options, make_plan
from tests.grafana_schema import schema_problems
from tests.helpers import converge_providers
from ecoctl.providers.grafana import DATASOURCE_UID, GrafanaProvider, dashboard_uid, render_dashboard
from ecoctl.workspace import Workspace


def make_workspace(root: Path, services: dict[str, int]) -> Workspace:
    lines = ["name: demo", "runtime: docker", "services:" if services else "services: {}"]
    for name, port in services.items():
        lines += [f"  {name}:", f"    port: {port}"]
    (root / "ecosystem.yaml").write_text("\n".join(lines) + "\n")
    return Workspace(root)


def plan_lines(ws: Workspace) -> list[str]:
    return [str(change) for change in make_plan([GrafanaProvider(ws)]).changes]


def dashboards(ws: Workspace) -> Path:
    return ws.root / "monitoring/grafana/dashboards"


def test_dashboard_per_service_with_queries_on_its_job(tmp_path):
    ws = make_workspace(tmp_path, {"portfolio": 8000, "loyalty-points": 8080})
    assert plan_lines(ws) == [
        "+ create dashboard portfolio (monitoring/grafana/dashboards/portfolio.json)",
        "+ create dashboard loyalty-points (monitoring/grafana/dashboards/loyalty-points.json)"]
    converge_providers([GrafanaProvider(ws)])
    assert plan_lines(ws) == []

    board = json.loads((dashboards(ws) / "loyalty-points.json").read_text())
    assert board["uid"] == "ecoctl-loyalty-points" and board["title"] == "loyalty-points"
    assert board["schemaVersion"] >= 36
    titles = [panel["title"] for panel in board["panels"]]
    assert titles == ["Request rate", "Error rate (5xx share)", "p95 latency", "Up"]
    exprs = {}
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID
            assert 'job="loyalty-points"' in target["expr"]
            exprs[panel["title"]] = target["expr"]
    assert exprs["Request rate"] == ('sum by (status) (rate(http_requests_total{job="loyalty-points"}[5m]))'
                                     ' or on() vector(0)')
    assert exprs["Error rate (5xx share)"] == (
        '(sum(rate(http_requests_total{job="loyalty-points",status=~"5.."}[5m])) or on() vector(0))'
        ' / (sum(rate(http_requests_total{job="loyalty-points"}[5m])) > 0 or on() vector(1))')
    assert exprs["p95 latency"] == ('histogram_quantile(0.95, sum by (le) '
                                    '(rate(http_request_duration_seconds_bucket{job="loyalty-points"}[5m])))')
    assert exprs["Up"] == 'up{job="loyalty-points"}'
    ids = [panel["id"] for panel in board["panels"]]
    assert len(set(ids)) == len(ids)


def test_uid_is_stable_unique_and_short():
    long_a, long_b = "a" + "b" * 38 + "c", "a" + "b" * 38 + "d"
    assert dashboard_uid("loyalty") == "ecoctl-loyalty"
    assert dashboard_uid(long_a) == dashboard_uid(long_a)
    assert dashboard_uid(long_a) != dashboard_uid(long_b)
    assert all(len(dashboard_uid(name)) <= 40 for name in (long_a, long_b, "x" * 33))
    assert render_dashboard("loyalty") == render_dashboard("loyalty")


def test_hand_edit_is_drift_and_regenerated(tmp_path):
    ws = make_workspace(tmp_path, {"loyalty": 8080})
    converge_providers([GrafanaProvider(ws)])
    path = dashboards(ws) / "loyalty.json"
    generated = path.read_text()
    # reformatting alone is not drift: the JSON is compared, not the bytes
    path.write_text(json.dumps(json.loads(generated)))
    assert plan_lines(ws) == []

    board = json.loads(generated)
    board["panels"][0]["title"] = "my title"
    path.write_text(json.dumps(board))
    assert plan_lines(ws) == ["~ update dashboard loyalty "
                              "(file differs from the generated dashboard; it will be regenerated)"]
    converge_providers([GrafanaProvider(ws)])
    assert path.read_text() == generated

    path.write_text("{ not json")
    assert plan_lines(ws) == ["~ update dashboard loyalty (file is not valid JSON; it will be regenerated)"]
    converge_providers([GrafanaProvider(ws)])
    assert path.read_text() == generated

    path.unlink()
    assert plan_lines(ws) == ["+ create dashboard loyalty (monitoring/grafana/dashboards/loyalty.json)"]


def test_removal_deletes_only_ecoctl_dashboards(tmp_path):
    ws = make_workspace(tmp_path, {"portfolio": 8000, "loyalty": 8080})
    converge_providers([GrafanaProvider(ws)])
    mine = dashboards(ws) / "overview.json"  # the user's own dashboard beside ecoctl's
    mine.write_text(json.dumps({"uid": "team-overview", "title": "Overview", "panels": []}))
    (dashboards(ws) / "notes.json").write_text("not json, not a service")

    ws.ecosystem_file.update(lambda doc: doc["services"].pop("loyalty"))
    assert plan_lines(ws) == ["- delete dashboard loyalty (service removed)"]
    converge_providers([GrafanaProvider(ws)])
    assert sorted(p.name for p in dashboards(ws).iterdir()) == ["notes.json", "overview.json", "portfolio.json"]
    assert plan_lines(ws) == []


def test_no_folder_reads_as_empty(tmp_path):
    ws = make_workspace(tmp_path, {})
    assert GrafanaProvider(ws).read() == {}
    assert plan_lines(ws) == []


def test_dashboards_match_what_init_provisions(tmp_path):
    """The datasource uid the panels use is the one init provisions, and the folder ecoctl writes
    is the one Grafana's file provider watches (through the compose mount)."""
    from ecoctl.commands.init import init_ecosystem
    from ruamel.yaml import YAML

    init_ecosystem(tmp_path / "demo", runtime="docker", without=("web",))
    root = tmp_path / "demo"
    provisioning = root / "monitoring/grafana/provisioning"
    datasources = YAML(typ="safe").load((provisioning / "datasources/prometheus.yml").read_text())
    assert [source["uid"] for source in datasources["datasources"]] == [DATASOURCE_UID]
    watched = YAML(typ="safe").load((provisioning / "dashboards/ecoctl.yml").read_text())
    path = watched["providers"][0]["options"]["path"]
    compose = YAML(typ="safe").load((root / "compose.yaml").read_text())
    assert f"./monitoring/grafana/dashboards:{path}:ro" in compose["services"]["grafana"]["volumes"]
    ws = Workspace(root)
    assert plan_lines(ws) == ["+ create dashboard portfolio (monitoring/grafana/dashboards/portfolio.json)"]


def test_every_generated_dashboard_passes_grafanas_schema(tmp_path):
    """What apply writes, for every service (a long name's hashed uid too), is a dashboard by the
    schema Grafana generates its SDK from."""
    long_name = "a-service-name-long-enough-for-hash-uid"  # 39 characters
    ws = make_workspace(tmp_path, {"portfolio": 8000, "loyalty-points": 8080, long_name: 8081})
    converge_providers([GrafanaProvider(ws)])
    written = sorted(dashboards(ws).glob("*.json"))
    assert [path.stem for path in written] == sorted(["portfolio", "loyalty-points", long_name])
    for path in written:
        board = json.loads(path.read_text())
        assert schema_problems(board) == [], path.name
        assert board["uid"] == dashboard_uid(path.stem)
        assert board["schemaVersion"] == 41


def broken(change) -> dict:
    board = copy.deepcopy(render_dashboard("loyalty"))
    change(board)
    return board


@pytest.mark.parametrize("change, problem", [
    (lambda b: b["panels"][0]["gridPos"].update(w="12"), "dashboard.panels[0].grid_pos.w: '12' is not an integer"),
    (lambda b: b["panels"][0].update(gridpos=b["panels"][0].pop("gridPos")),
     "dashboard.panels[0].gridpos: not in the schema"),
    (lambda b: b["panels"][3]["options"].update(colorMode="rainbow"),
     "dashboard.panels[3].options.color_mode: 'rainbow' is not one of "
     "['value', 'background', 'background_solid', 'none']"),
    (lambda b: b["panels"][2]["targets"][0].update(expresion=b["panels"][2]["targets"][0].pop("expr")),
     "dashboard.panels[2].targets[0].expresion: not in the schema"),
    (lambda b: b["panels"][2]["targets"][0].update(expr=["up"]), "dashboard.panels[2].targets[0].expr: ['up'] is not a string"),
    (lambda b: b.update(time="now-1h"), "dashboard.time: 'now-1h' was written back as"),
    (lambda b: b.update(editable="yes"), "dashboard.editable: 'yes' is not a boolean"),
    (lambda b: b["panels"][3]["fieldConfig"]["defaults"]["mappings"][0].update(type="valu"),
     "does not parse: KeyError: 'valu'"),
])
def test_schema_check_catches_a_broken_dashboard(change, problem):
    problems = schema_problems(broken(change))
    assert len(problems) == 1 and problems[0].startswith(problem), problems
