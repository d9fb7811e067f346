"""Monitoring that tells the truth, on the embedded local runtime with a real Prometheus (Debian's
package), the portfolio service, a python-fastapi and a go-gin service, all through the real CLI:

- every query of every generated dashboard returns a number once traffic was scraped twice;
- a stopped service fires its ServiceDown alert (Prometheus's own rule evaluation, a short `for:`
  from ecosystem.yaml), `ecoctl status` lists it, and Alertmanager (Debian's prometheus-alertmanager,
  enabled in ecosystem.yaml) POSTs it to the webhook receiver set there;
- after core.monitoring.prometheus_port moves, `plan` shows Prometheus's own job moving, `apply`
  moves it (and Prometheus with it), and Prometheus scrapes itself again: up{job="prometheus"} == 1.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import threading
import time

import httpx
import pytest

from tests.helpers import free_edge_ports, free_port, run_ecoctl

pytestmark = [
    pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                       reason="prometheus/promtool not on PATH (apt-get install prometheus)"),
    pytest.mark.skipif(shutil.which("prometheus-alertmanager") is None,
                       reason="prometheus-alertmanager not on PATH (apt-get install prometheus-alertmanager)"),
    pytest.mark.skipif(shutil.which("go") is None, reason="go is not on PATH: the go-gin service cannot be built"),
]
SERVICES = {"portfolio": None, "loyalty": "python-fastapi", "rewards": "go-gin"}


def query(url: str, expr: str) -> list:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]["result"]


def wait_for(what: str, check, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
        time.sleep(every)


class Webhook:
    """Alertmanager's webhook receiver: keeps every JSON body POSTed to it."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self) -> list[dict]:
        return [alert for body in self.received for alert in body.get("alerts", [])]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    receiver = Webhook()
    yield receiver
    receiver.close()


@pytest.fixture
def stack(tmp_path, webhook):
    assert run_ecoctl("init", "demo", "--runtime", "local", "--without", "web", cwd=tmp_path).returncode == 0
    root = tmp_path / "demo"
    ports = {key: free_port() for key in ("pg", "redis", "prom", "portfolio", "loyalty", "rewards", "am", "issuer")}
    text = (root / "ecosystem.yaml").read_text()
    text = text.replace("    port: 5432", f"    port: {ports['pg']}").replace("    port: 6379", f"    port: {ports['redis']}")
    text = text.replace("prometheus_port: 9090", f"prometheus_port: {ports['prom']}")
    text = text.replace("    port: 9000", f"    port: {ports['issuer']}")  # the development sign-in's
    text = text.replace("    port: 8000", f"    port: {ports['portfolio']}")
    text = text.replace("    grafana_port: 3001\n", "    grafana_port: 3001\n    alertmanager:\n      enabled: true\n"
                        f"      port: {ports['am']}\n      webhook_url: {webhook.url}\n")
    (root / "ecosystem.yaml").write_text(free_edge_ports(text))
    try:
        up = run_ecoctl("up", "--json", cwd=root, timeout=900)
        assert up.returncode == 0, up.stderr[-3000:]
        assert json.loads(up.stdout)["endpoints"]["alertmanager"] == f"http://127.0.0.1:{ports['am']}"
        for name, template in SERVICES.items():
            if template is not None:
                added = run_ecoctl("add-service", name, "--template", template, "--port", str(ports[name]),
                                   "--json", cwd=root, timeout=900)
                assert added.returncode == 0, added.stderr[-3000:]
        yield root, ports
    finally:
        run_ecoctl("down", "--volumes", "--yes", cwd=root)


class Traffic:
    """Requests to every service in the background: 200s, 401s (no token) and 404s."""

    def __init__(self, root, ports):
        self.urls = []
        for name in SERVICES:
            base = f"http://127.0.0.1:{ports[name]}"
            token = run_ecoctl("token", name, cwd=root).stdout.strip()
            self.urls += [(f"{base}/healthz", {}), (f"{base}/no-such-path", {}),
                          (f"{base}/{'portfolios' if name == 'portfolio' else 'items'}", {}),
                          (f"{base}/{'portfolios' if name == 'portfolio' else 'items'}",
                           {"Authorization": f"Bearer {token}"})]
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                for url, headers in self.urls:
                    try:
                        client.get(url, headers=headers)
                        self.sent += 1
                    except httpx.HTTPError:
                        pass
                self.stop.wait(0.2)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)


def dashboard_queries(root) -> dict[str, list[tuple[str, str]]]:
    boards = {}
    for path in sorted((root / "monitoring/grafana/dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        boards[path.stem] = [(panel["title"], target["expr"]) for panel in board["panels"]
                             for target in panel["targets"]]
    return boards


def test_dashboards_alerts_and_prometheus_port(stack, webhook):
    root, ports = stack
    url = f"http://127.0.0.1:{ports['prom']}"
    config = root / "monitoring/prometheus/prometheus.yml"
    checked = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0 and "3 rule files found" in checked.stdout, checked.stdout + checked.stderr

    # every panel of every dashboard answers with a number, once the traffic was scraped twice
    boards = dashboard_queries(root)
    assert sorted(boards) == sorted(SERVICES)
    with Traffic(root, ports):
        for name in SERVICES:
            wait_for(f"two scrapes of {name}'s traffic",
                     lambda: query(url, f'sum(rate(http_requests_total{{job="{name}"}}[5m])) > 0'), 90)
        for name, queries in boards.items():
            assert len(queries) == 4
            for title, expr in queries:
                result = query(url, expr)
                assert result, f"{name}: panel {title!r} has no data: {expr}"
                values = [float(sample["value"][1]) for sample in result]
                assert all(not math.isnan(value) for value in values), (name, title, result)
            [share] = query(url, dict(queries)["Error rate (5xx share)"])
            assert float(share["value"][1]) == 0.0  # no 5xx: 0%, a number
        assert all(query(url, f'up{{job="{name}"}} == 1') for name in SERVICES)
    assert query(url, 'up{job="prometheus"} == 1') and query(url, 'up{job="alertmanager"} == 1')

    # a stopped service fires ServiceDown (for: 10s here), and status lists it
    root_spec = root / "ecosystem.yaml"
    text = root_spec.read_text().replace(f"    port: {ports['loyalty']}\n",
                                         f"    port: {ports['loyalty']}\n    alerts: {{after: 10s}}\n")
    root_spec.write_text(text)
    plan = run_ecoctl("plan", cwd=root)
    assert "~ update alert rules loyalty (ServiceDown, ServiceErrors, ServiceSlow differ)" in plan.stdout, plan.stdout
    applied = run_ecoctl("apply", "--yes", cwd=root, timeout=300)
    assert applied.returncode == 0, applied.stderr[-2000:]
    from ecoctl.runtimes import get_runtime
    from ecoctl.workspace import Workspace

    get_runtime(Workspace(root)).stop_service("loyalty")
    firing = wait_for("ServiceDown firing for loyalty", lambda: [
        alert for alert in httpx.get(f"{url}/api/v1/alerts").json()["data"]["alerts"]
        if alert["labels"].get("alertname") == "ServiceDown" and alert["state"] == "firing"], 120)
    assert [alert["labels"]["service"] for alert in firing] == ["loyalty"]
    status = json.loads(run_ecoctl("status", "--json", cwd=root).stdout)
    assert [(alert["name"], alert["service"]) for alert in status["alerts"]] == [("ServiceDown", "loyalty")]
    shown = run_ecoctl("status", cwd=root)
    assert "ServiceDown" in shown.stdout and "loyalty is down" in shown.stdout
    assert {c["name"]: c["state"] for c in status["components"]}["alertmanager"] == "running"
    sent = wait_for("Alertmanager POSTing ServiceDown to the webhook", lambda: [
        alert for alert in webhook.alerts() if alert["labels"]["alertname"] == "ServiceDown"], 90)
    assert sent[0]["status"] == "firing" and sent[0]["labels"]["service"] == "loyalty"
    assert sent[0]["annotations"]["summary"] == "loyalty is down"

    # Prometheus moves to another port: its own job is a planned change, applied, and up again
    moved = free_port()
    root_spec.write_text(root_spec.read_text().replace(f"prometheus_port: {ports['prom']}", f"prometheus_port: {moved}"))
    plan = run_ecoctl("plan", cwd=root)
    assert (f"~ update scrape job prometheus (targets 127.0.0.1:{ports['prom']} -> 127.0.0.1:{moved})"
            in plan.stdout), plan.stdout
    applied = run_ecoctl("apply", "--yes", cwd=root, timeout=300)
    assert applied.returncode == 0, applied.stderr[-2000:]
    url = f"http://127.0.0.1:{moved}"
    wait_for("up{job=\"prometheus\"} == 1 at the new port",
             lambda: query(url, 'up{job="prometheus"} == 1') if _answers(url) else None, 60)
    assert run_ecoctl("plan", "--detailed-exitcode", cwd=root).returncode == 0


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
