"""A real Prometheus (Debian's `prometheus` package) on loopback, started from a generated-style
config: after the provider adds a service's job and reloads, Prometheus scrapes a real /metrics
endpoint and reports the target up; the dashboard queries run against it."""

from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import pytest

from tests.helpers import wait_until_answers

from ecoctl.clients import prometheus
from ecoctl.commands.reconcile import runtime_view
from ecoctl.errors import EcoctlError
from ecoctl.plan import Options, make_plan
from tests.helpers import converge_providers
from tests.helpers import free_port
from ecoctl.providers.grafana import panel_queries
from ecoctl.clients.prometheus_config import PrometheusConfig
from ecoctl.providers.files import FilesProvider
from ecoctl.providers.prometheus import PrometheusProvider
from ecoctl.workspace import Workspace

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                                reason="prometheus/promtool not on PATH (apt-get install prometheus)")

@pytest.fixture
def service_metrics():
    """A real /metrics endpoint serving the Portfolio service's own metrics registry (the names
    every service exposes), with a few requests recorded."""
    import sys

    from prometheus_client import start_http_server

    from ecoctl.support.resources import templates_dir

    sys.path.insert(0, str(templates_dir() / "portfolio" / "files"))
    from portfolio_service.metrics import Metrics

    metrics = Metrics()
    metrics.requests.labels("GET", "/portfolios/{portfolio_id}", "200").inc(7)
    metrics.requests.labels("GET", "/portfolios/{portfolio_id}", "500").inc()
    metrics.duration.labels("GET", "/portfolios/{portfolio_id}").observe(0.042)
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    yield port
    server.shutdown()
    server.server_close()


@pytest.fixture
def prometheus_server(tmp_path):
    """A real Prometheus started from the files `ecoctl init` generates (local runtime)."""
    from ecoctl.commands.init import init_ecosystem

    port = free_port()
    root = tmp_path / "demo"
    init_ecosystem(root, runtime="local", without=("web",))
    ws = Workspace(root)
    ws.ecosystem_file.update(
        lambda doc: doc["core"]["monitoring"].__setitem__("prometheus_port", port))
    config = root / "monitoring/prometheus/prometheus.yml"
    config.unlink()  # made again for this port, as `init` makes it
    converge_providers([FilesProvider(Workspace(root))])
    assert PrometheusConfig.load(config).jobs.keys() == {"prometheus"}
    log = open(tmp_path / "prometheus.log", "wb")
    process = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
         "--web.enable-lifecycle", f"--storage.tsdb.path={tmp_path / 'data'}"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/-/ready", process, 20, "prometheus")
    except AssertionError as failure:
        raise AssertionError(f"{failure}: {(tmp_path / 'prometheus.log').read_text()[-2000:]}") from None
    yield root
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def target_health(url: str, job: str) -> str | None:
    for target in prometheus.active_targets(url):
        if target["labels"].get("job") == job:
            return target["health"]
    return None


def query(url: str, expr: str) -> list:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]["result"]


def test_added_service_is_scraped_and_up(prometheus_server, service_metrics):
    ws = Workspace(prometheus_server)
    ws.ecosystem_file.update(lambda doc: doc["services"].__setitem__("loyalty", {"port": service_metrics}))
    ws = Workspace(prometheus_server)
    url = ws.prometheus_url
    assert target_health(url, "loyalty") is None

    plan = make_plan([PrometheusProvider(ws)])
    assert [str(c) for c in plan.changes if c.kind == "scrape job"] == [
        "+ create scrape job portfolio (target 127.0.0.1:8000)",
        f"+ create scrape job loyalty (target 127.0.0.1:{service_metrics})"]
    # a run stopped between writing the file and reloading leaves drift the next plan reports
    converge_providers([PrometheusProvider(ws, Options(reload=False))])
    assert target_health(url, "loyalty") is None
    assert [str(c) for c in make_plan([PrometheusProvider(ws)]).changes] == [
        f"~ update scrape job {name} (in prometheus.yml, not loaded by the running Prometheus: reload)"
        for name in ("portfolio", "loyalty")] + [
        f"~ update alert rules {name} (in rules/{name}.yml, not loaded by the running Prometheus: reload)"
        for name in ("portfolio", "loyalty")]
    started = time.monotonic()
    converge_providers([PrometheusProvider(ws, runtime=runtime_view(ws))])  # reloads, waits until the loaded config has each job
    assert make_plan([PrometheusProvider(ws)]).empty
    assert "loyalty" in prometheus.loaded_jobs(url) and "loyalty" in prometheus.loaded_rule_groups(url)
    assert prometheus.last_reload_successful(url)
    reloaded = time.monotonic() - started

    deadline = time.monotonic() + 25  # the first scrape comes within one 15 s interval
    while target_health(url, "loyalty") != "up":
        assert time.monotonic() < deadline, prometheus.active_targets(url)
        time.sleep(0.5)
    print(f"job listed {reloaded:.1f}s after apply, up {time.monotonic() - started:.1f}s after apply")

    assert [r["value"][1] for r in query(url, 'up{job="loyalty"}')] == ["1"]
    for expr in panel_queries("loyalty").values():
        query(url, expr)  # each dashboard query parses and runs against the real server
    series = query(url, 'http_requests_total{job="loyalty"}')
    assert {r["metric"]["status"] for r in series} == {"200", "500"}
    [bucket] = query(url, 'http_request_duration_seconds_bucket{job="loyalty",le="0.064"}')  # the 42 ms request
    assert bucket["value"][1] == "1"

    ws.ecosystem_file.update(lambda doc: doc["services"].pop("loyalty"))
    converge_providers([PrometheusProvider(ws, runtime=runtime_view(ws))])  # removes the job, reloads, waits until it is gone
    assert "loyalty" not in prometheus.loaded_jobs(url) and make_plan([PrometheusProvider(ws)]).empty
    deadline = time.monotonic() + 15  # targets follow the loaded configuration within discovery's ~5 s
    while target_health(url, "loyalty") is not None:
        assert time.monotonic() < deadline, prometheus.active_targets(url)
        time.sleep(0.25)
    assert target_health(url, "portfolio") is not None and target_health(url, "prometheus") is not None
    assert make_plan([PrometheusProvider(ws)]).empty


def test_reload_failure_is_reported(prometheus_server):
    """A broken rule file (written behind ecoctl's back, so promtool never saw it) fails the reload."""
    ws = Workspace(prometheus_server)
    url = ws.prometheus_url
    config = prometheus_server / "monitoring/prometheus/prometheus.yml"
    good = config.read_text()
    (config.parent / "rules.yml").write_text("groups:\n  - name: x\n    rules:\n      - record: 'not a name'\n"
                                             "        expr: up\n")
    config.write_text(good + "rule_files: ['rules.yml']\n")
    with pytest.raises(EcoctlError) as caught:
        prometheus.reload(url)
    assert "could not reload" in str(caught.value) and "\n" not in str(caught.value)
    assert not prometheus.last_reload_successful(url)
    config.write_text(good)
    assert prometheus.reload(url)


def test_reload_without_prometheus_is_not_an_error():
    assert prometheus.reload(f"http://127.0.0.1:{free_port()}") is False
