"""Fixtures for Authentik tests: the test double (one server per session, reset per test), and a
`Target` that scenarios run against: the double, or a real Authentik (tests/test_authentik_live.py).

Import what you use: `from tests.authentik_fixtures import authentik_double, authentik_target, ...`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ecoctl.clients.authentik import AuthentikClient, _tls_context
from ecoctl.support.yaml import roundtrip as yaml_roundtrip
from tests.helpers import ensure_secrets, free_port
from ecoctl.providers.authentik import AuthentikProvider
from ecoctl.workspace import Workspace
from tests.authentik_double import AuthentikDouble, FaultProxy, client_credentials_username

FAST = {"timeout": 5.0, "retries": 3, "backoff": 0.02, "max_backoff": 0.1}
"""Retry settings for tests: the same code path as production, with a shorter bound."""


@dataclass
class Target:
    """An Authentik to run scenarios against, behind something that can inject 502s."""

    base_url: str
    token: str
    prefix: str = ""
    """Prepended to service names, so a shared real Authentik keeps other objects apart."""
    double: AuthentikDouble | None = None
    proxy: FaultProxy | None = None
    services: set[str] = field(default_factory=set)
    oidc_url: str = ""
    """Where tokens are fetched and checked (a real Authentik names its issuer after the Host it sees)."""

    def __post_init__(self) -> None:
        self.oidc_url = self.oidc_url or self.base_url

    def fail_next(self, count: int, status: int = 502) -> None:
        (self.double or self.proxy).fail_next(count, status)  # type: ignore[union-attr]

    def api(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=f"{self.base_url}/api/v3",
                            headers={"Authorization": f"Bearer {token or self.token}"}, timeout=10,
                            verify=_tls_context())

    def provider(self, client_id: str) -> dict | None:
        with self.api() as api:
            found = api.get("/providers/oauth2/", params={"client_id": client_id}).json()["results"]
        return next((p for p in found if p["client_id"] == client_id), None)

    def application(self, slug: str) -> dict | None:
        with self.api() as api:
            answer = api.get(f"/core/applications/{slug}/")
        return answer.json() if answer.status_code == 200 else None

    def cleanup(self) -> None:
        """Delete what the scenarios made: applications, then each provider's client_credentials
        service account (nothing names it once the provider is gone), then providers."""
        with self.api() as api:
            for name in self.services:
                api.delete(f"/core/applications/{name}/")
                if provider := self.provider(name):
                    for user in self.service_accounts(provider["name"]):
                        api.delete(f"/core/users/{user['pk']}/")
                    api.delete(f"/providers/oauth2/{provider['pk']}/")

    def service_accounts(self, provider_name: str) -> list[dict]:
        """The `ak-<provider>-client_credentials` service account Authentik made for PROVIDER_NAME."""
        username = client_credentials_username(provider_name)
        with self.api() as api:
            found = api.get("/core/users/", params={"username": username, "type": "service_account"})
        return [user for user in found.json()["results"] if user["username"] == username]


def write_workspace(root: Path, base_url: str, token: str, services: dict[str, dict],
                    name: str = "demo") -> Workspace:
    """An ecosystem directory whose Authentik is `base_url` (an external `core.authentik.url`)."""
    root.mkdir(parents=True, exist_ok=True)
    document = {"name": name, "runtime": "docker", "core": {"authentik": {"url": base_url}},
                "services": services}
    with open(root / "ecosystem.yaml", "w") as out:
        yaml_roundtrip().dump(document, out)
    env = root / ".env"
    env.write_text(f"POSTGRES_PASSWORD=pw\nAUTHENTIK_BOOTSTRAP_TOKEN={token}\n")
    env.chmod(0o600)
    ensure_secrets(Workspace(root))  # as every command does before it plans
    return Workspace(root)


def provider_for(workspace: Workspace, **options) -> AuthentikProvider:
    """The provider with test retry settings (a fresh Workspace reads ecosystem.yaml/.env again)."""
    return AuthentikProvider(workspace, client=AuthentikClient.for_workspace(workspace, **{**FAST, **options}))


@pytest.fixture(scope="session")
def authentik_double_server():
    double = AuthentikDouble(page_size=2, max_page_size=2).start()  # every list takes pages
    yield double
    double.stop()


@pytest.fixture
def authentik_double(authentik_double_server) -> AuthentikDouble:
    """A freshly booted Authentik double (the session's server, reset)."""
    authentik_double_server.reset()
    return authentik_double_server


@pytest.fixture
def authentik_target(authentik_double) -> Target:
    return Target(authentik_double.base_url, authentik_double.token, double=authentik_double)


@pytest.fixture
def closed_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


def random_prefix() -> str:
    return f"t{secrets.token_hex(3)}-"


def docker_gateway_ip() -> str:
    """The host's address on the default docker bridge: reachable from the host and every container."""
    import docker

    client = docker.from_env()
    try:
        config = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    finally:
        client.close()
    if config.get("Gateway"):
        return config["Gateway"]
    import ipaddress

    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))  # older engines omit the gateway


class BridgeDouble(AuthentikDouble):
    """The double on the docker gateway address, so the issuer is the same for host and containers."""

    def __init__(self, host: str):
        from tests.authentik_double import _fresh_state

        super().__init__(page_size=50)
        self.host = host
        self.base_url = f"http://{host}:{self.port}"
        self.state = _fresh_state(self.base_url)


@pytest.fixture(scope="module")
def authentik_on_bridge():
    """The Authentik double where containers reach it too (docker and swarm runtime tests)."""
    double = BridgeDouble(docker_gateway_ip()).start()
    yield double
    double.stop()
