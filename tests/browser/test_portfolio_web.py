"""The portfolio web app in a real browser (Debian's Chromium, driven by Playwright; no browser is
downloaded), over the edge's HTTPS origins (the web app at `/`, the API under `/api/portfolio/`, the
development sign-in on its own origin), with the ecosystem's root certificate (`ecoctl ca export`)
trusted in the browser's own NSS database (a temporary HOME, `certutil` from libnss3-tools; no
certificate error is ignored), against the local runtime's development sign-in and the real portfolio service:
sign in → create a portfolio → add a holding → see the valuation → sign out; a protected route
sends a signed-out visitor to sign in; an expired access token is renewed; a wrong password is
refused with a message; axe-core finds no serious or critical violation on any screen.

Screenshots of each screen are kept in `tests/artifacts/browser/` (or `$ECOCTL_TEST_ARTIFACTS/browser/`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.helpers import init_local, run_ecoctl

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("ECOCTL_TEST_ARTIFACTS") or Path(__file__).parents[1] / "artifacts") / "browser"
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
               "api": f"{site}/api/portfolio", "ca": str(ca)}
    finally:
        run_ecoctl("down", "--volumes", "--yes", cwd=root, timeout=120)


def trusting_home(folder: Path, ca: str) -> Path:
    """A HOME whose NSS database (Chromium's on Linux) trusts CA to identify web sites."""
    nssdb = folder / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    for args in (["-N", "--empty-password"], ["-A", "-n", "ecoctl ecosystem root", "-t", "C,,", "-i", ca]):
        done = subprocess.run(["certutil", "-d", f"sql:{nssdb}", *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return folder


def trusting(stack) -> ssl.SSLContext:
    """A client context trusting the ecosystem's root only."""
    return ssl.create_default_context(cafile=stack["ca"])


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as started:
        yield started


def launch(playwright, home: Path):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"],
                                      env={**os.environ, "HOME": str(home)})


@pytest.fixture(scope="module")
def browser(playwright, stack, tmp_path_factory):
    chromium = launch(playwright, trusting_home(tmp_path_factory.mktemp("chromium-home"), stack["ca"]))
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser):
    # bypass_csp: axe-core is injected as an inline script (the CSP itself is checked by test_web_serve)
    context = browser.new_context(viewport={"width": 1200, "height": 860}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def axe(stack, tmp_path_factory) -> str:
    """axe-core at the version the web app's lockfile pins (a devDependency), installed by npm into
    a folder of the test's: the web app's own node_modules exists only where it was built (the
    build is cached for every ecosystem of this host)."""
    import subprocess

    lock = json.loads((stack["root"] / "services" / "web" / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/axe-core"]["version"]
    folder = tmp_path_factory.mktemp("axe")
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": "/etc/ssl/certs/ca-certificates.crt"}
    subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error",
                    f"axe-core@{version}"], cwd=folder, env=env, check=True, capture_output=True, timeout=300)
    return (folder / "node_modules" / "axe-core" / "axe.min.js").read_text()


def assert_accessible(page, axe: str, screen: str) -> None:
    page.add_script_tag(content=axe)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]
           if v["impact"] in ("serious", "critical")]
    assert not bad, f"{screen}: {bad}"


def sign_in(page, stack, password: str | None = None) -> None:
    page.wait_for_url(re.compile(re.escape(stack["issuer"]) + r"/.*"))
    page.fill("#username", "dev")
    page.fill("#password", password or stack["password"])
    page.click("button[type=submit]")


def test_a_protected_route_sends_a_signed_out_visitor_to_sign_in(stack, page, axe):
    page.goto(f"{stack['site']}/portfolios")
    page.wait_for_url(re.compile(re.escape(stack["issuer"]) + r"/application/o/authorize/.*"))
    url = page.url
    assert "code_challenge_method=S256" in url and "code_challenge=" in url and "response_type=code" in url
    assert page.get_by_text("Development sign-in").is_visible()
    shot(page, "01-sign-in")
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
    shot(page, "02-wrong-password")


def record_price(stack, symbol: str, currency: str, price: str) -> None:
    """A price, as an administrator of the portfolio service records it (scope portfolio:admin)."""
    token = run_ecoctl("token", "portfolio", "--scope", "openid portfolio:admin", cwd=stack["root"])
    assert token.returncode == 0, token.stderr
    answer = httpx.post(f"{stack['api']}/instruments/{symbol}/prices", json={"currency": currency, "price": price},
                        headers={"Authorization": f"Bearer {token.stdout.strip()}"}, verify=trusting(stack))
    assert answer.status_code == 201, answer.text


def test_sign_in_create_a_portfolio_add_a_holding_see_the_valuation_sign_out(stack, page, axe):
    root = stack["root"]
    record_price(stack, "ACME", "EUR", "15")
    page.goto(f"{stack['site']}/portfolios")
    sign_in(page, stack)
    page.wait_for_url(f"{stack['site']}/portfolios")
    page.get_by_text("No portfolios yet").wait_for()
    assert "dev" in page.get_by_test_id("signed-in-as").inner_text()
    shot(page, "03-portfolios-empty")
    assert_accessible(page, axe, "empty portfolio list")

    page.fill("#new-name", "Retirement")
    page.fill("#new-currency", "EUR")
    page.get_by_role("button", name="Create portfolio").click()
    page.get_by_role("link", name="Retirement").wait_for()
    page.get_by_test_id("totals").wait_for()
    shot(page, "04-portfolios")
    assert_accessible(page, axe, "portfolio list")

    page.fill("#new-name", "Retirement")
    page.fill("#new-currency", "usd")
    page.get_by_role("button", name="Create portfolio").click()
    page.get_by_text("Your portfolios (2)").wait_for()
    page.get_by_test_id("totals").get_by_text("USD", exact=True).wait_for()  # a total per currency
    page.get_by_role("button", name="Rename Retirement").last.click()
    page.get_by_label("New name for Retirement").fill("Travel fund")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("link", name="Travel fund").wait_for()

    page.get_by_role("link", name="Retirement").first.click()
    page.get_by_role("heading", name="Add a holding").wait_for()
    page.get_by_text("No holdings yet").wait_for()
    page.fill("#holding-symbol", "ACME")
    page.fill("#holding-quantity", "10")
    page.fill("#holding-price", "12.5")
    page.get_by_role("button", name="Add holding").click()
    page.get_by_role("rowheader", name="ACME").wait_for()
    valuation = page.get_by_test_id("valuation")
    page.wait_for_function("() => document.querySelector('[data-testid=valuation]').innerText.includes('150.00')")
    figures = valuation.inner_text().lower()  # 10 ACME bought at 12.50, priced 15: worth 150, 25 gained
    for label, amount in (("total value", "€150.00"), ("market value", "€150.00"), ("cost basis", "€125.00"),
                          ("cash", "€0.00"), ("unrealized gain", "€25.00")):
        assert re.search(rf"{label}\n{re.escape(amount)}", figures), figures
    shot(page, "05-portfolio-valuation")
    assert_accessible(page, axe, "portfolio detail")

    page.fill("#holding-symbol", "acme")
    page.fill("#holding-quantity", "-3")
    page.fill("#holding-price", "1")
    page.get_by_role("button", name="Add holding").click()
    problem = page.get_by_role("alert")
    problem.wait_for()
    assert "quantity" in problem.inner_text()  # the API's RFC 9457 problem, as a sentence
    shot(page, "06-problem")

    page.get_by_role("button", name="Remove ACME").click()
    page.get_by_role("button", name="Remove ACME", exact=True).last.click()
    page.get_by_text("No holdings yet").wait_for()
    page.wait_for_function("() => document.querySelector('[data-testid=valuation]').innerText.toLowerCase().includes('realized gain\\n€25.00')")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(f"({re.escape(stack['site'])}/|{re.escape(stack['issuer'])}/.*)"))
    page.goto(f"{stack['site']}/portfolios")
    page.wait_for_url(re.compile(re.escape(stack["issuer"]) + r"/application/o/authorize/.*"))
    assert page.locator("#password").is_visible()  # the issuer's session ended too: sign in again
    shot(page, "07-signed-out")


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
    shot(page, "08-renewed")
    page.get_by_role("button", name="Delete Travel fund").click()
    page.get_by_role("group", name="Delete Travel fund?").get_by_role("button", name="Delete").click()
    page.get_by_role("link", name="Travel fund").wait_for(state="detached")
    page.get_by_text("Your portfolios (1)").wait_for()
