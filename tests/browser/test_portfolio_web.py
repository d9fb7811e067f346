"""The portfolio web app in a real browser (Debian's Chromium, driven by Playwright; no browser is
downloaded), over the edge's HTTPS origins (the web app at `/`, the API under `/api/portfolio/`, the
development sign-in on its own origin), with the ecosystem's root certificate (`ecoctl ca export`)
trusted in the browser's own NSS database (a temporary HOME, `certutil` from libnss3-tools; no
certificate error is ignored), against the local runtime's development sign-in and the real portfolio service:
sign in → create a portfolio → add a holding → see the valuation → sign out; a protected route
sends a signed-out visitor to sign in; an expired access token is renewed; a wrong password is
refused with a message; axe-core finds no serious or critical violation on any screen.

The fixtures and the flow are shared with the docker runtime's test (conftest.py, portfolio_flow.py).
Screenshots of each screen are kept in `tests/artifacts/browser/` (or `$ECOCTL_TEST_ARTIFACTS/browser/`)."""

from __future__ import annotations

import json
import os
import re
import shutil

import httpx
import pytest

from tests.browser.portfolio_flow import (CHROMIUM, assert_accessible, launch, shot, sign_in,
                                          sign_in_create_add_value_sign_out, trusting)
from tests.helpers import init_local, run_ecoctl

pytestmark = [
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="no /usr/bin/chromium: tests/run.sh installs Debian's chromium"),
    pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed: tests/run.sh installs Debian's nodejs and npm"),
    pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy (the edge) is not installed: tests/run.sh installs it"),
    pytest.mark.skipif(shutil.which("certutil") is None,
                       reason="certutil is not installed: tests/run.sh installs Debian's libnss3-tools"),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root, ports = init_local(tmp_path_factory.mktemp("browser"), web=True)  # the web app init ships
    try:
        up = run_ecoctl("up", "--json", cwd=root, timeout=900)
        assert up.returncode == 0, up.stderr[-3000:]
        endpoints = json.loads(up.stdout)["endpoints"]
        web = {service["name"]: service for service in json.loads(up.stdout)["services"]}["web"]
        assert web["url"] == f"http://127.0.0.1:{ports['web']}" and web["health"] == "healthy"  # what `up` printed
        password = run_ecoctl("secrets", "password", "dev", cwd=root)
        assert password.returncode == 0, password.stderr
        exported = run_ecoctl("ca", "export", cwd=root)
        assert exported.returncode == 0, exported.stderr
        ca = root.parent / "ecosystem-root.pem"
        ca.write_text(exported.stdout)
        site, issuer = endpoints["edge"].rstrip("/"), endpoints["sign-in"].rstrip("/")
        assert site.startswith("https://") and issuer.startswith("https://"), endpoints
        yield {"root": root, "site": site, "issuer": issuer, "password": password.stdout.strip(),
               "api": f"{site}/api/portfolio", "ca": str(ca), "prefix": ""}
    finally:
        run_ecoctl("down", "--volumes", "--yes", cwd=root, timeout=120)


def test_a_protected_route_sends_a_signed_out_visitor_to_sign_in(stack, page, axe):
    page.goto(f"{stack['site']}/portfolios")
    page.wait_for_url(re.compile(re.escape(stack["issuer"]) + r"/application/o/authorize/.*"))
    url = page.url
    assert "code_challenge_method=S256" in url and "code_challenge=" in url and "response_type=code" in url
    assert page.get_by_text("Development sign-in").is_visible()
    shot(stack, page, "01-sign-in")
    assert_accessible(page, axe, "sign-in page")


def test_without_the_root_certificate_the_browser_refuses_the_edge(playwright, stack, tmp_path):
    from playwright.sync_api import Error

    chromium = launch(playwright, tmp_path)  # a HOME with no NSS database: nothing trusts the root
    try:
        with pytest.raises(Error) as refused:
            chromium.new_page().goto(f"{stack['site']}/portfolios")
    finally:
        chromium.close()
    assert "ERR_CERT_AUTHORITY_INVALID" in str(refused.value), refused.value


def test_a_wrong_password_is_refused_with_a_message(stack, page):
    page.goto(f"{stack['site']}/portfolios")
    sign_in(page, stack, password="not-the-password")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert alert.inner_text().strip()
    assert page.url.startswith(stack["issuer"])
    shot(stack, page, "02-wrong-password")


def test_sign_in_create_a_portfolio_add_a_holding_see_the_valuation_sign_out(stack, page, axe):
    sign_in_create_add_value_sign_out(stack, page, axe)


def test_an_expired_access_token_is_renewed(stack, page):
    page.goto(f"{stack['site']}/portfolios")
    sign_in(page, stack)
    page.get_by_role("link", name="Travel fund").wait_for()
    key, stored = page.evaluate(
        "() => { const k = Object.keys(sessionStorage).find(k => k.startsWith('oidc.user:')); return [k, sessionStorage.getItem(k)]; }")
    user = json.loads(stored)
    assert user["refresh_token"]
    user["expires_at"] = 1  # long expired
    page.evaluate("([k, v]) => sessionStorage.setItem(k, v)", [key, json.dumps(user)])
    page.reload()
    page.get_by_role("link", name="Travel fund").wait_for()
    assert page.url == f"{stack['site']}/portfolios"  # renewed without the sign-in page
    renewed = json.loads(page.evaluate("k => sessionStorage.getItem(k)", key))
    assert renewed["access_token"] != user["access_token"] and renewed["expires_at"] > user["expires_at"]
    answer = httpx.get(f"{stack['api']}/portfolios", verify=trusting(stack),
                       headers={"Authorization": f"Bearer {renewed['access_token']}"})
    assert answer.status_code == 200 and answer.json()["total"] == 2
    shot(stack, page, "08-renewed")
    page.get_by_role("button", name="Delete Travel fund").click()
    page.get_by_role("group", name="Delete Travel fund?").get_by_role("button", name="Delete").click()
    page.get_by_role("link", name="Travel fund").wait_for(state="detached")
    page.get_by_text("Your portfolios (1)").wait_for()
