"""The browser tests' fixtures, for every runtime's module (each gives its own `stack`; see
tests/browser/portfolio_flow.py)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.browser.portfolio_flow import launch, trusting_home


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as started:
        yield started


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


@pytest.fixture(scope="module")
def axe(stack, tmp_path_factory) -> str:
    """axe-core at the version the web app's lockfile pins (a devDependency), installed by npm into
    a folder of the test's: the web app's own node_modules exists only where it was built (the
    build is cached for every ecosystem of this host, or made inside an image)."""
    lock = json.loads((stack["root"] / "services" / "web" / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/axe-core"]["version"]
    folder = tmp_path_factory.mktemp("axe")
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": "/etc/ssl/certs/ca-certificates.crt"}
    subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error",
                    f"axe-core@{version}"], cwd=folder, env=env, check=True, capture_output=True, timeout=300)
    return (folder / "node_modules" / "axe-core" / "axe.min.js").read_text()
