"""PostgreSQL in the docker runtime serves TLS with the ecosystem CA's certificate: a client with
sslmode=verify-full and the root from `ecoctl ca export` connects over TLS; without the root it
cannot. The key reaches the server as a copy its user owns (the compose entry's entrypoint)."""

from __future__ import annotations

import secrets

import psycopg
import pytest

from ecoctl import certs
from ecoctl.workspace import Workspace
from tests.helpers import DOCKER_TEST_IMAGES, docker_engine_problem, free_port

ENGINE_PROBLEM = docker_engine_problem()


@pytest.mark.docker
@pytest.mark.skipif(ENGINE_PROBLEM is not None, reason=ENGINE_PROBLEM or "")
def test_postgres_in_docker_serves_the_ca_certificate(tmp_path):
    from ecoctl.commands.init import init_ecosystem
    from ecoctl.commands.reconcile import converge
    from ecoctl.runtimes.docker import DockerRuntime

    root = tmp_path / "eco"
    init_ecosystem(root, runtime="docker")
    port = free_port()

    def configure(document):
        document["name"] = f"tls{secrets.token_hex(3)}"
        document["images"] = dict(DOCKER_TEST_IMAGES)
        document["core"]["postgres"]["port"] = port

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
            ssl, version = conn.execute("select ssl, version from pg_stat_ssl where pid = pg_backend_pid()").fetchone()
        assert ssl is True and version in ("TLSv1.2", "TLSv1.3")
        with pytest.raises(psycopg.OperationalError):  # the system's CAs do not know the ecosystem's
            psycopg.connect(f"{dsn} sslrootcert=system", connect_timeout=10).close()
    finally:
        runtime.stop(remove_volumes=True)
        runtime.close()
