"""What the browser tests share, whichever runtime serves the stack (tests/browser/test_portfolio_web*.py):
Debian's Chromium driven by Playwright (no browser is downloaded) trusting the ecosystem's root
certificate through its own NSS database, screenshots, axe-core checks, the development sign-in's
form, and the flow itself: sign in → create a portfolio → add a holding → see the valuation → sign out.

A test module gives a module fixture `stack`: a dict with `root` (the ecosystem), `site` (the edge's
HTTPS origin), `issuer` (the sign-in's origin), `api`, `password` (the development user `dev`'s),
`ca` (the root certificate's file) and `prefix` (of its screenshots' names). The fixtures
(`playwright`, `browser`, `page`, `axe`) are in tests/browser/conftest.py."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
from pathlib import Path

import httpx

from tests.helpers import run_ecoctl

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("ECOCTL_TEST_ARTIFACTS") or Path(__file__).parents[1] / "artifacts") / "browser"


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


def launch(playwright, home: Path):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"],
                                      env={**os.environ, "HOME": str(home)})


def shot(stack, page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{stack['prefix']}{name}.png"), full_page=True)


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


def record_price(stack, symbol: str, currency: str, price: str) -> None:
    """A price, as an administrator of the portfolio service records it (scope portfolio:admin)."""
    token = run_ecoctl("token", "portfolio", "--scope", "openid portfolio:admin", cwd=stack["root"])
    assert token.returncode == 0, token.stderr
    answer = httpx.post(f"{stack['api']}/instruments/{symbol}/prices", json={"currency": currency, "price": price},
                        headers={"Authorization": f"Bearer {token.stdout.strip()}"}, verify=trusting(stack))
    assert answer.status_code == 201, answer.text


def sign_in_create_add_value_sign_out(stack, page, axe) -> None:
    """The flow, screen by screen (screenshots 03 to 07): leaves one portfolio "Retirement" and one
    "Travel fund" behind."""
    record_price(stack, "ACME", "EUR", "15")
    page.goto(f"{stack['site']}/portfolios")
    sign_in(page, stack)
    page.wait_for_url(f"{stack['site']}/portfolios")
    page.get_by_text("No portfolios yet").wait_for()
    assert "dev" in page.get_by_test_id("signed-in-as").inner_text()
    shot(stack, page, "03-portfolios-empty")
    assert_accessible(page, axe, "empty portfolio list")

    page.fill("#new-name", "Retirement")
    page.fill("#new-currency", "EUR")
    page.get_by_role("button", name="Create portfolio").click()
    page.get_by_role("link", name="Retirement").wait_for()
    page.get_by_test_id("totals").wait_for()
    shot(stack, page, "04-portfolios")
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
    shot(stack, page, "05-portfolio-valuation")
    assert_accessible(page, axe, "portfolio detail")

    page.fill("#holding-symbol", "acme")
    page.fill("#holding-quantity", "-3")
    page.fill("#holding-price", "1")
    page.get_by_role("button", name="Add holding").click()
    problem = page.get_by_role("alert")
    problem.wait_for()
    assert "quantity" in problem.inner_text()  # the API's RFC 9457 problem, as a sentence
    shot(stack, page, "06-problem")

    page.get_by_role("button", name="Remove ACME").click()
    page.get_by_role("button", name="Remove ACME", exact=True).last.click()
    page.get_by_text("No holdings yet").wait_for()
    page.wait_for_function("() => document.querySelector('[data-testid=valuation]').innerText.toLowerCase().includes('realized gain\\n€25.00')")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(f"({re.escape(stack['site'])}/|{re.escape(stack['issuer'])}/.*)"))
    page.goto(f"{stack['site']}/portfolios")
    page.wait_for_url(re.compile(re.escape(stack["issuer"]) + r"/application/o/authorize/.*"))
    assert page.locator("#password").is_visible()  # the issuer's session ended too: sign in again
    shot(stack, page, "07-signed-out")
