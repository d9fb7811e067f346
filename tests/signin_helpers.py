"""The development sign-in for tests: its program started on a config `ecoctl.signin` renders from a
real ecosystem model, and a browser's steps through it (authorization request, sign-in form, code)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from ecoctl import signin
from ecoctl.local_auth import ensure_signing_key
from ecoctl.model import Ecosystem


def development_env(model: Ecosystem) -> dict[str, str]:
    """.env as ecoctl would fill it for MODEL's sign-in: `<user>-password`, `<service>-secret`."""
    env = {signin.SESSION_SECRET: secrets.token_urlsafe(32)}
    env.update({signin.password_key(user): f"{user}-password" for user in model.core.signin.users})
    env.update({signin.client_secret_key(name): f"{name}-secret" for name, spec in model.services.items()
                if spec.client == "confidential"})
    return env


@contextmanager
def running_issuer(base: Path, model: Ecosystem, port: int):
    """`python -m ecoctl.issuer` on PORT for MODEL (its state under BASE) until the block ends."""
    ensure_signing_key(SimpleNamespace(state_dir=base))
    env = development_env(model)
    config = base / "signin.json"
    config.write_text(signin.render(model, env, base, port))
    url = f"http://127.0.0.1:{port}"
    with open(base / "issuer.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "ecoctl.issuer", str(config)], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(f"{url}/-/health/ready/").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, (base / "issuer.log").read_text()
                time.sleep(0.1)
            yield SimpleNamespace(url=url, model=model, base=base, env=env, process=process, config=config)
        finally:
            process.terminate()
            process.wait(timeout=10)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def sign_in(issuer, client_id: str, user: str, password: str, challenge: str, redirect_uri: str,
            **extra) -> tuple[httpx.Client, httpx.Response]:
    """A browser: the authorization request, the sign-in form filled in and posted."""
    browser = httpx.Client(follow_redirects=False)
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
             "scope": "openid email profile", "state": "st4te", "nonce": "n0nce",
             "code_challenge": challenge, "code_challenge_method": "S256", **extra}
    form = browser.get(f"{issuer.url}/application/o/authorize/?{urlencode(query)}")
    assert form.status_code == 200, form.text
    assert "Development sign-in" in form.text
    action = re.search(r'<form method="post" action="([^"]+)"', form.text).group(1).replace("&amp;", "&")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    answer = browser.post(f"{issuer.url}{action}", data={"csrf": csrf, "username": user, "password": password})
    return browser, answer


def code_of(answer: httpx.Response, redirect_uri: str) -> str:
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(redirect_uri)
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st4te"]
    return query["code"][0]


def web_app_tokens(issuer, client_id: str, user: str, redirect_uri: str, **extra) -> dict:
    """The token response a web app gets for USER: signed in, code exchanged with its verifier."""
    verifier, challenge = pkce()
    _browser, answer = sign_in(issuer, client_id, user, f"{user}-password", challenge, redirect_uri, **extra)
    response = httpx.post(f"{issuer.url}/application/o/token/", data={
        "grant_type": "authorization_code", "code": code_of(answer, redirect_uri), "redirect_uri": redirect_uri,
        "client_id": client_id, "code_verifier": verifier})
    assert response.status_code == 200, response.text
    return response.json()
