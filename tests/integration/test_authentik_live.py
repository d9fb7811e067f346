"""The Authentik scenarios against a real Authentik (opt-in).

    ECOCTL_TEST_AUTHENTIK_URL=http://127.0.0.1:9000 ECOCTL_TEST_AUTHENTIK_TOKEN=... pytest tests/test_authentik_live.py

Objects are named with a random prefix (`t1a2b3c-loyalty`) and deleted afterwards. Faults (502s, a
server going away) come from a loopback proxy put in front of the real server.
"""

from __future__ import annotations

import os

import pytest

from tests.authentik_double import FaultProxy
from tests.authentik_fixtures import Target, random_prefix
from tests.integration.test_authentik_scenarios import *  # noqa: F401,F403  (the scenarios, re-run here)

URL = os.environ.get("ECOCTL_TEST_AUTHENTIK_URL", "").rstrip("/")
TOKEN = os.environ.get("ECOCTL_TEST_AUTHENTIK_TOKEN", "")

pytestmark = pytest.mark.skipif(not (URL and TOKEN), reason="set ECOCTL_TEST_AUTHENTIK_URL and "
                                "ECOCTL_TEST_AUTHENTIK_TOKEN to run the Authentik scenarios against a real one")


@pytest.fixture
def authentik_target():  # noqa: F811  (replaces the double's target for this module)
    proxy = FaultProxy(URL).start()
    target = Target(proxy.base_url, TOKEN, prefix=random_prefix(), proxy=proxy, oidc_url=URL)
    try:
        yield target
    finally:
        proxy.stop()
        target.base_url = URL
        target.cleanup()
