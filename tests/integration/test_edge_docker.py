"""The docker runtime's TLS: PostgreSQL serves the ecosystem CA's certificate (a client with
sslmode=verify-full and the root from `ecoctl ca export` connects over TLS; without the root it
cannot; the key reaches the server as a copy its user owns), and the edge container (Caddy, its
Caddyfile written by ecoctl) answers HTTPS with the CA's certificate, redirects plain HTTP, and
routes the APIs to the services on the compose network."""

from __future__ import annotations

import secrets

import ssl

import httpx
import psycopg
import pytest

from ecoctl import certs, components_edge
from ecoctl.workspace import Workspace
from tests.helpers import DOCKER_TEST_IMAGES, docker_engine_problem, free_port, use_free_edge_ports

ENGINE_PROBLEM = docker_engine_problem()


@pytest.mark.docker
@pytest.mark.skipif(ENGINE_PROBLEM is not None, reason=ENGINE_PROBLEM or "")
def test_postgres_and_the_edge_in_docker_serve_the_ca_certificate(tmp_path):
    from ecoctl.commands.init import init_ecosystem
    from ecoctl.commands.reconcile import converge
    from ecoctl.runtimes.docker import DockerRuntime

    root = tmp_path / "eco"
    init_ecosystem(root, runtime="docker", without=("web",))
    port = free_port()

    def configure(document):
        document["name"] = f"tls{secrets.token_hex(3)}"
        document["images"] = dict(DOCKER_TEST_IMAGES)
        document["core"]["postgres"]["port"] = port
        document["core"]["redis"]["port"] = free_port()
        document["core"]["monitoring"]["prometheus_port"] = free_port()
        document["core"]["authentik"]["url"] = "http://127.0.0.1:9"  # not started by start_core
        use_free_edge_ports(document)

    Workspace(root).ecosystem_file.update(configure)
    workspace = Workspace(root)
    converge(workspace, only={"files", "compose"})  # compose.yaml for the new name and port; the CA
    runtime = DockerRuntime(workspace)
    password = workspace.secret("POSTGRES_PASSWORD")
    root_pem = certs.root_cert_path(workspace.state_dir)
    try:
        runtime.start_postgres()
        dsn = f"host=127.0.0.1 port={port} dbname=postgres user=postgres password={password} sslmode=verify-full"
        with psycopg.connect(f"{dsn} sslrootcert={root_pem}", connect_timeout=10) as conn:
            on, version = conn.execute("select ssl, version from pg_stat_ssl where pid = pg_backend_pid()").fetchone()
        assert on is True and version in ("TLSv1.2", "TLSv1.3")
        with pytest.raises(psycopg.OperationalError):  # the system's CAs do not know the ecosystem's
            psycopg.connect(f"{dsn} sslrootcert=system", connect_timeout=10).close()

        runtime.start_core()  # redis and the edge
        edge = workspace.ecosystem.core.edge
        caddyfile = (root / ".ecoctl/edge/Caddyfile").read_text()
        assert "handle_path /api/portfolio/* {\n\t\treverse_proxy portfolio:" in caddyfile
        with httpx.Client(verify=ssl.create_default_context(cafile=str(root_pem))) as client:
            home = client.get(f"https://127.0.0.1:{edge.port}/")
            assert home.status_code == 404 and components_edge.NO_WEB_APP in home.text
            assert home.headers["strict-transport-security"].startswith("max-age=")
            assert client.get(f"https://127.0.0.1:{edge.port}/api/portfolio/healthz").status_code == 502  # not started
        redirect = httpx.get(f"http://127.0.0.1:{edge.http_port}/x")
        assert (redirect.status_code, redirect.headers["location"]) == (308, f"https://127.0.0.1:{edge.port}/x")
    finally:
        runtime.stop(remove_volumes=True)
        runtime.close()
