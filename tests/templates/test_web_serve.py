"""The web apps' server (templates/react-vite/files/serve.py), rendered as add-service renders it and
run as the runtimes run it, over real HTTP on loopback: caching, the Content-Security-Policy, the
single-page fallback, gzip, /config.json from the service contract, the API forwarded, /healthz and
/metrics. No Node.js needed: a hand-made build stands in for Vite's output."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from ecoctl.service_templates import find_template, render_template
from tests.helpers import free_port, wait_until_answers


class Upstream(BaseHTTPRequestHandler):
    """An API that echoes what it was sent."""

    def do_GET(self):
        self._answer()

    def do_POST(self):
        self._answer()

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps({"method": self.command, "path": self.path,
                           "authorization": self.headers.get("Authorization"),
                           "body": self.rfile.read(length).decode() if length else None}).encode()
        status = 401 if self.path.startswith("/private") else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/problem+json" if status == 401 else "application/json")
        self.send_header("WWW-Authenticate", "Bearer")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web") / "shop-web"
    render_template(find_template("react-vite"), folder, {"service_name": "shop-web", "port": 3000,
                                                          "title": "Shop"})
    dist = folder.parent / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<!doctype html><script type="module" src="/assets/index-abc123.js"></script>')
    (dist / "assets" / "index-abc123.js").write_text("console.log('app');\n" * 200)
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    env = {"PORT": str(port), "HOST": "127.0.0.1", "OIDC_ISSUER": "http://127.0.0.1:9000/application/o/shop-web/",
           "OIDC_CLIENT_ID": "shop-web", "API_URLS": f"shop=http://127.0.0.1:{upstream.server_address[1]}",
           "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen([sys.executable, "serve.py", str(dist)], cwd=folder, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/healthz", process, 20, "serve.py")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        upstream.shutdown()


def test_pages_are_not_cached_and_hashed_assets_are_immutable(site):
    page = httpx.get(f"{site}/")
    assert page.status_code == 200 and "index-abc123.js" in page.text
    assert page.headers["cache-control"] == "no-cache"
    asset = httpx.get(f"{site}/assets/index-abc123.js")
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert asset.headers["content-type"].startswith("text/javascript") or "javascript" in asset.headers["content-type"]


def test_every_answer_has_a_content_security_policy_naming_the_issuer(site):
    csp = httpx.get(f"{site}/").headers["content-security-policy"]
    rules = dict(rule.split(" ", 1) for rule in csp.split("; "))
    assert rules["default-src"] == "'self'" and rules["script-src"] == "'self'"
    assert rules["connect-src"] == "'self' http://127.0.0.1:9000"
    assert rules["frame-ancestors"] == "'none'" and rules["object-src"] == "'none'"
    assert httpx.get(f"{site}/assets/index-abc123.js").headers["content-security-policy"] == csp
    assert httpx.get(f"{site}/assets/index-abc123.js").headers["x-content-type-options"] == "nosniff"


def test_app_routes_fall_back_to_the_page_but_missing_assets_are_404(site):
    deep = httpx.get(f"{site}/portfolios/42?tab=holdings")
    assert deep.status_code == 200 and "index-abc123.js" in deep.text
    assert deep.headers["cache-control"] == "no-cache"
    assert httpx.get(f"{site}/assets/index-old.js").status_code == 404
    assert httpx.get(f"{site}/../../etc/passwd").status_code in (200, 404)  # never a file outside the build
    assert "root:" not in httpx.get(f"{site}/%2e%2e/%2e%2e/etc/passwd").text


def test_text_is_gzipped_for_clients_that_accept_it(site):
    import http.client
    from urllib.parse import urlsplit

    raw = httpx.get(f"{site}/assets/index-abc123.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    connection = http.client.HTTPConnection(urlsplit(site).netloc, timeout=5)
    connection.request("GET", "/assets/index-abc123.js", headers={"Accept-Encoding": "gzip"})
    packed = connection.getresponse()
    body = packed.read()
    connection.close()
    assert packed.getheader("Content-Encoding") == "gzip"
    assert len(body) < len(raw.content) / 5
    assert gzip.decompress(body) == raw.content


def test_config_comes_from_the_service_contract(site):
    answer = httpx.get(f"{site}/config.json")
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json() == {"issuer": "http://127.0.0.1:9000/application/o/shop-web/", "client_id": "shop-web",
                             "scope": "openid profile email offline_access", "api": "/api/shop", "title": "Shop"}


def test_the_api_is_forwarded_with_the_token_and_body(site):
    got = httpx.post(f"{site}/api/shop/portfolios?limit=5", json={"name": "x"},
                     headers={"Authorization": "Bearer abc"}).json()
    assert got == {"method": "POST", "path": "/portfolios?limit=5", "authorization": "Bearer abc",
                   "body": '{"name":"x"}'}
    refused = httpx.get(f"{site}/api/shop/private")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.headers["content-type"] == "application/problem+json"
    unknown = httpx.get(f"{site}/api/other/x")
    assert unknown.status_code == 404 and "no API named 'other'" in unknown.json()["detail"]


def test_health_and_metrics_as_the_contract_asks(site):
    assert httpx.get(f"{site}/healthz").json() == {"status": "ok"}
    httpx.get(f"{site}/")
    metrics = httpx.get(f"{site}/metrics").text
    assert 'http_requests_total{method="GET",route="page",status="200"}' in metrics
    assert "http_request_duration_seconds_bucket" in metrics
