"""What a service behind the edge is told: the edge's own X-Forwarded-For/-Proto/-Host (a client's
forged ones replaced, `Forwarded` dropped), on the path its API serves (the /api/<service> prefix
stripped). Real Caddy with the Caddyfile ecoctl writes, a real upstream that echoes its headers."""

from __future__ import annotations

import http.server
import json
import shutil
import ssl
import subprocess
import threading
import time

import httpx
import pytest

from ecoctl import certs, components
from ecoctl.component_kinds import Place
from ecoctl.workspace import Workspace
from tests.helpers import use_free_edge_ports

pytestmark = pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed (tests/run.sh installs it)")


class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path, "headers": {key.lower(): value for key, value in self.headers.items()}})
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_the_edge_sets_the_forwarded_headers_itself(tmp_path, upstream):
    from ecoctl.commands.init import init_ecosystem

    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))

    def change(document):
        use_free_edge_ports(document)
        document["services"]["echo"] = {"port": upstream}

    Workspace(root).ecosystem_file.update(change)
    workspace = Workspace(root)
    certs.ensure(workspace.state_dir, workspace.ecosystem)
    leaf = certs.leaf(workspace.state_dir, "edge")
    place = Place(binary="caddy", folder=tmp_path, data=tmp_path / "data", config=tmp_path / "Caddyfile", port=0,
                  secrets={}, ecosystem=workspace.ecosystem, tls=(leaf.cert, leaf.key))
    place.config.write_text(components.EDGE.local.config(place))
    edge = workspace.ecosystem.core.edge
    log = open(tmp_path / "caddy.log", "wb")
    caddy = subprocess.Popen(["caddy", "run", "--config", str(place.config), "--adapter", "caddyfile"],
                             stdout=log, stderr=log, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    verify = ssl.create_default_context(cafile=str(certs.root_cert_path(workspace.state_dir)))
    try:
        url = f"https://127.0.0.1:{edge.port}/api/echo/whoami?x=1"
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.get(url, verify=verify, headers={
                    "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "gopher",
                    "X-Forwarded-Host": "evil.example", "Forwarded": "for=203.0.113.9;proto=http"})
                break
            except httpx.TransportError:
                assert caddy.poll() is None, (tmp_path / "caddy.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "caddy did not answer"
                time.sleep(0.2)
        assert answer.status_code == 200
        seen = answer.json()
        assert seen["path"] == "/whoami?x=1"  # the prefix stripped
        headers = seen["headers"]
        assert headers["x-forwarded-for"] == "127.0.0.1"
        assert headers["x-forwarded-proto"] == "https"
        assert headers["x-forwarded-host"] == f"127.0.0.1:{edge.port}"
        assert "forwarded" not in headers
    finally:
        caddy.terminate()
        caddy.wait(10)
        log.close()
