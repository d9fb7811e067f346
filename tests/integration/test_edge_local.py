"""The edge and PostgreSQL's TLS listener in the local runtime, through the real CLI: `up` starts
Caddy as the unprivileged runtime user with the ecosystem CA's certificate; an API answers through
it (401 without a token, 200 with one) for a client trusting only `ecoctl ca export`; plain HTTP is
redirected; TLS 1.1 is refused. A client in another network namespace (made here: `ip netns` and a
veth pair with private addresses, removed after) reaches PostgreSQL over TLS with
sslmode=verify-full and the root certificate, and fails without it."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys

import httpx
import pytest

from ecoctl import contract
from ecoctl.support.envfile import EnvFile
from ecoctl.workspace import Workspace
from tests.helpers import free_edge_ports, free_port, run_ecoctl

pytestmark = [
    pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed (tests/run.sh installs it)"),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                       reason="a network namespace needs root and iproute2 (CI runs tests/run.sh as root)"),
]


def caddy_owner(root) -> int:
    """The uid the ecosystem's edge runs as (supervisord starts it as the runtime's user)."""
    from ecoctl.runtimes.local import LocalRuntime

    pid = LocalRuntime(Workspace(root)).supervisor.info("edge")["pid"]
    assert open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0].endswith(b"caddy")
    return os.stat(f"/proc/{pid}").st_uid


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def netns():
    """A namespace with one end of a veth pair: (name, this host's address, its address)."""
    tag = secrets.token_hex(3)
    name, host_end, ns_end = f"ecoedge{tag}", f"eeh{tag}", f"een{tag}"
    octet = int(tag[:2], 16) % 250 + 1
    here, there = f"10.213.{octet}.1", f"10.213.{octet}.2"
    ip("netns", "add", name)
    try:
        ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        ip("link", "set", ns_end, "netns", name)
        ip("addr", "add", f"{here}/30", "dev", host_end)
        ip("link", "set", host_end, "up")
        ip("netns", "exec", name, "ip", "addr", "add", f"{there}/30", "dev", ns_end)
        ip("netns", "exec", name, "ip", "link", "set", ns_end, "up")
        ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield name, here, there
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)  # gone with the namespace, mostly


@pytest.fixture
def stack(tmp_path, netns):
    name, here, there = netns
    assert run_ecoctl("init", "demo", "--runtime", "local", cwd=tmp_path).returncode == 0
    root = tmp_path / "demo"
    ports = {key: free_port() for key in ("pg", "redis", "prom", "portfolio", "loyalty", "web")}
    text = (root / "ecosystem.yaml").read_text()
    text = text.replace("    port: 5432", f"    port: {ports['pg']}").replace("    port: 6379", f"    port: {ports['redis']}")
    text = text.replace("prometheus_port: 9090", f"prometheus_port: {ports['prom']}")
    text = text.replace("    port: 8000", f"    port: {ports['portfolio']}")
    text = text.replace("    port: 3000", f"    port: {ports['web']}")  # the web app init ships: core.edge.web
    text = text.replace("    port: 9000", f"    port: {free_port()}")  # the development sign-in
    text = text.replace("  # address: 10.0.1.50", f"  address: {here}")
    (root / "ecosystem.yaml").write_text(free_edge_ports(text))
    added = run_ecoctl("add-service", "loyalty", "--pattern", "external", "--host", there,
                       "--port", str(ports["loyalty"]), "--no-apply", cwd=root)
    assert added.returncode == 0, added.stderr
    yield root, ports, netns
    run_ecoctl("down", "--volumes", "--yes", cwd=root)


def test_the_edge_and_postgres_over_tls(stack, tmp_path):
    root, ports, (namespace, here, there) = stack
    up = run_ecoctl("up", "--json", cwd=root, timeout=600)
    assert up.returncode == 0, up.stderr[-3000:]
    summary = json.loads(up.stdout)
    edge = Workspace(root).ecosystem.core.edge
    assert summary["endpoints"]["edge"] == f"https://{here}:{edge.port}/"
    root_pem = tmp_path / "root.pem"
    exported = run_ecoctl("ca", "export", cwd=root)
    assert exported.returncode == 0 and "PRIVATE" not in exported.stdout
    root_pem.write_text(exported.stdout)
    assert caddy_owner(root) != 0  # the runtime's unprivileged user
    rows = {row["name"]: row for row in json.loads(run_ecoctl("status", "--json", cwd=root).stdout)["components"]}
    assert (rows["edge"]["state"], rows["edge"]["url"]) == ("running", f"https://127.0.0.1:{edge.port}")
    assert (rows["postgres-tls"]["state"], rows["postgres-tls"]["url"]) == ("running", f"postgresql://{here}:{ports['pg']}")
    checks = {check["name"]: check for check in json.loads(run_ecoctl("doctor", "--json", cwd=root).stdout)["checks"]}
    assert checks["certificates"]["status"] == "ok" and checks["caddy"]["status"] == "ok"

    base = f"https://127.0.0.1:{edge.port}"
    with httpx.Client(verify=ssl.create_default_context(cafile=str(root_pem))) as client:
        refused = client.get(f"{base}/api/portfolio/portfolios")
        assert refused.status_code == 401
        assert refused.headers["strict-transport-security"].startswith("max-age=")
        assert refused.headers["x-content-type-options"] == "nosniff"
        assert "server" not in refused.headers
        token = run_ecoctl("token", "portfolio", cwd=root).stdout.strip()
        allowed = client.get(f"{base}/api/portfolio/portfolios", headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200, allowed.text
        assert client.get(f"https://{here}:{edge.port}/api/portfolio/healthz").status_code == 200  # its address too
        home = client.get(f"{base}/")  # `/` is the web app's (the one init ships)
        assert home.status_code == 200 and home.headers["strict-transport-security"]
        assert '<div id="root">' in home.text and "default-src 'self'" in home.headers["content-security-policy"]
        assert '<div id="root">' in client.get(f"{base}/portfolios").text  # a route of the app, not an API's
        slug = contract.client_id(Workspace(root).ecosystem, "portfolio")  # the sign-in, on its own origin
        discovery = client.get(f"https://127.0.0.1:{edge.auth_port}/application/o/{slug}/.well-known/openid-configuration")
        assert discovery.status_code == 200, discovery.text
        assert discovery.json()["issuer"] == contract.issuer(Workspace(root).ecosystem, "portfolio")
        assert discovery.json()["issuer"].startswith(f"https://{here}:{edge.auth_port}/")
    with pytest.raises(httpx.ConnectError):  # the system's CAs do not know the ecosystem's
        httpx.get(f"{base}/api/portfolio/healthz")
    redirect = httpx.get(f"http://127.0.0.1:{edge.http_port}/api/portfolio/healthz")
    assert redirect.status_code == 308
    assert redirect.headers["location"] == f"{base}/api/portfolio/healthz"
    curl = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(root_pem),
                           f"{base}/api/portfolio/portfolios"], capture_output=True, text=True)
    assert curl.stdout == "401", curl.stderr
    for version, refused in (("-tls1_1", True), ("-tls1_2", False)):
        hello = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{edge.port}", version,
                                "-cipher", "DEFAULT:@SECLEVEL=0", "-CAfile", str(root_pem)],
                               input="", capture_output=True, text=True, timeout=30)
        assert ("alert protocol version" in hello.stderr) is refused, hello.stderr[-500:]
        assert (hello.returncode != 0) is refused

    password = EnvFile(root / ".env").get("LOYALTY_DB_PASSWORD")
    probe = ("import sys, psycopg\n"
             "try:\n"
             "    with psycopg.connect(sys.argv[1], connect_timeout=30) as conn:\n"
             "        print(conn.execute('select current_user, ssl from pg_stat_ssl "
             "join pg_stat_activity using (pid) where pid = pg_backend_pid()').fetchone()[0])\n"
             "except psycopg.Error as exc:\n"
             "    print('refused:', str(exc).strip().splitlines()[0]); sys.exit(3)\n")
    base_dsn = f"host={here} port={ports['pg']} dbname=loyalty_db user=loyalty_user password={password}"

    def from_namespace(dsn: str):
        return subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", probe, dsn],
                              capture_output=True, text=True, timeout=60, env={**os.environ, "PGSSLROOTCERT": ""})

    verified = from_namespace(f"{base_dsn} sslmode=verify-full sslrootcert={root_pem}")
    assert verified.returncode == 0 and verified.stdout.strip() == "loyalty_user", (
        verified.stdout + verified.stderr + run_ecoctl("logs", "postgres-tls", "--tail", "20", cwd=root).stdout)
    for dsn in (f"{base_dsn} sslmode=verify-full sslrootcert={tmp_path / 'none.pem'}",  # without the root
                f"{base_dsn} sslmode=verify-full sslrootcert=system",  # the system's CAs only
                f"{base_dsn} sslmode=disable"):  # no TLS at all
        failed = from_namespace(dsn)
        assert failed.returncode == 3 and "refused:" in failed.stdout, (dsn, failed.stdout, failed.stderr)
    told = contract.environment(Workspace(root), "loyalty", "external")  # what loyalty's host is given
    assert (told["DATABASE_HOST"], told["DATABASE_PORT"], told["DATABASE_SSLMODE"]) == (
        here, str(ports["pg"]), "verify-full")
