"""`up` against an external Authentik with a wrong token (issue 12): a 401/403 is final, so waiting
stops at the first look and the error names where the token is read from (not authentik-worker)."""

import pytest

from ecoctl.clients.authentik import wait_for_authentik
from ecoctl.errors import AuthentikError
from tests.authentik_fixtures import authentik_double, authentik_double_server, write_workspace  # noqa: F401


def test_a_refused_token_fails_at_once_naming_its_source(tmp_path, authentik_double):  # noqa: F811
    workspace = write_workspace(tmp_path / "eco", authentik_double.base_url, "not-the-token", {})
    looks = []
    with pytest.raises(AuthentikError) as raised:
        wait_for_authentik(workspace, timeout=5, interval=0.2,
                           on_progress=lambda missing, elapsed: looks.append(missing))
    message = str(raised.value)
    assert f"AUTHENTIK_BOOTSTRAP_TOKEN in {tmp_path / 'eco' / '.env'}" in message
    assert "authentik-worker" not in message and "not-the-token" not in message
    assert looks == []  # no polling: the first answer was final


def test_the_right_token_is_still_waited_for_while_flows_are_missing(tmp_path, authentik_double):  # noqa: F811
    authentik_double.defaults_ready = False
    workspace = write_workspace(tmp_path / "eco", authentik_double.base_url, authentik_double.token, {})
    with pytest.raises(Exception) as raised:
        wait_for_authentik(workspace, timeout=0.5, interval=0.2)
    assert "not ready after" in str(raised.value) and "authentik-worker" not in str(raised.value)
