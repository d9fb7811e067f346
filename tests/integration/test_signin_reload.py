"""The development sign-in reloads its clients and users on SIGHUP (what the local runtime sends
when a service is added): a refresh token issued before still refreshes, the new client is known as
soon as the health check names the new config; a change of more (its port, signing key) is not
taken by a reload, which says so."""

from __future__ import annotations

import hashlib
import json
import signal
import time

import httpx
import pytest

from ecoctl import signin
from ecoctl.model import Ecosystem
from tests import signin_helpers as helpers
from tests.helpers import free_port
from tests.signin_helpers import pkce, running_issuer

WEB = "http://127.0.0.1:3000/"


def ecosystem(port: int, *extra: str) -> Ecosystem:
    services = {"portfolio": {"port": 8000}, "web": {"port": 3000, "client": "public", "calls": ["portfolio"],
                                                     "redirect_uris": [WEB]}}
    services.update({name: {"port": 8100 + i} for i, name in enumerate(extra)})
    return Ecosystem.from_data({"name": "demo", "runtime": "local",
                                "core": {"authentik": {"port": port, "prefix": "demo-"}, "signin": {"users": ["alice"]}},
                                "services": services})


def signed_in(issuer) -> str:
    """A refresh token of alice's, through the web app's code flow."""
    verifier, challenge = pkce()
    _browser, answer = helpers.sign_in(issuer, "demo-web", "alice", "alice-password", challenge, WEB)
    tokens = httpx.post(f"{issuer.url}/application/o/token/", data={
        "grant_type": "authorization_code", "code": helpers.code_of(answer, WEB), "redirect_uri": WEB,
        "client_id": "demo-web", "code_verifier": verifier})
    assert tokens.status_code == 200, tokens.text
    return tokens.json()["refresh_token"]


def refreshed(issuer, token: str) -> httpx.Response:
    return httpx.post(f"{issuer.url}/application/o/token/", data={
        "grant_type": "refresh_token", "refresh_token": token, "client_id": "demo-web"})


def runs_with(issuer, text: str, timeout: float = 5.0) -> bool:
    wanted = hashlib.sha256(text.encode()).hexdigest()
    deadline = time.monotonic() + timeout
    while httpx.get(f"{issuer.url}/-/health/ready/").json().get("config") != wanted:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def known(issuer, client_id: str) -> bool:
    return httpx.get(f"{issuer.url}/application/o/{client_id}/.well-known/openid-configuration").status_code == 200


@pytest.fixture
def issuer(tmp_path):
    port = free_port()
    with running_issuer(tmp_path, ecosystem(port), port) as running:
        yield running


def test_a_reload_keeps_refresh_tokens_and_learns_new_clients(issuer):
    token = signed_in(issuer)
    before = issuer.config.read_text()
    assert runs_with(issuer, before, timeout=0)  # the health check names the config it runs with
    assert not known(issuer, "demo-rewards")
    grown = ecosystem(int(issuer.url.rsplit(":", 1)[1]), "rewards")
    after = signin.render(grown, {**issuer.env, signin.client_secret_key("rewards"): "rewards-secret"},
                          issuer.base, grown.core.authentik.port, before)
    assert signin.reloads(before, after)  # only its clients changed: the runtime signals, no restart
    issuer.config.write_text(after)
    issuer.process.send_signal(signal.SIGHUP)
    assert runs_with(issuer, after)
    assert known(issuer, "demo-rewards")
    service = httpx.post(f"{issuer.url}/application/o/token/", auth=("demo-rewards", "rewards-secret"),
                         data={"grant_type": "client_credentials"})
    assert service.status_code == 200, service.text
    renewed = refreshed(issuer, token)  # issued before the reload
    assert renewed.status_code == 200, renewed.text
    assert issuer.process.poll() is None
    assert "reloaded the config (3 clients, 1 users)" in (issuer.base / "issuer.log").read_text()


def test_a_new_signing_key_or_port_is_not_taken_by_a_reload(issuer):
    before = issuer.config.read_text()
    moved = json.loads(before)
    moved["port"] += 1
    after = json.dumps(moved, indent=2, sort_keys=True) + "\n"
    assert not signin.reloads(before, after)  # the runtime restarts it instead
    rekeyed = json.loads(before)
    rekeyed["signing_key"] = "another key"
    assert not signin.reloads(before, json.dumps(rekeyed))
    issuer.config.write_text(after)
    issuer.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    log = issuer.base / "issuer.log"
    while "not reloaded" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "more than its clients and users changed" in log.read_text()
    assert runs_with(issuer, before, timeout=0)  # still the config it started with
    assert issuer.process.poll() is None
