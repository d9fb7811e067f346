"""The Authentik API client: pagination, version check, readiness wait, error mapping."""

from __future__ import annotations

import threading

import pytest

from ecoctl.clients.authentik import AuthentikClient, AuthentikNotFound, AuthentikValidation, field_errors
from ecoctl.errors import EcoctlError, Unreachable
from tests.authentik_fixtures import FAST, authentik_double, authentik_double_server  # noqa: F401


def client_of(double, **options) -> AuthentikClient:
    return AuthentikClient(double.base_url, double.token, **{**FAST, **options})


def test_list_follows_pagination_next(authentik_double):
    for index in range(5):
        authentik_double.add_client(f"svc{index}")
    with client_of(authentik_double) as client:
        names = [p["client_id"] for p in client.list("/providers/oauth2/")]
    assert sorted(names) == [f"svc{i}" for i in range(5)]
    pages = [r.query for r in authentik_double.api_calls("GET", "/api/v3/providers/oauth2/")]
    assert pages == [f"page_size=500&page={page}" for page in (1, 2, 3)]  # the tests' double cuts pages to 2


def test_scope_mappings_are_fetched_in_one_call_at_the_provider_path(authentik_double):
    with client_of(authentik_double) as client:
        defaults = client.defaults()
        with pytest.raises(AuthentikNotFound):
            client.get("/propertymappings/scope/")  # the pre-2024.8 path
    assert len(defaults.scope_mappings) == 3
    calls = authentik_double.api_calls("GET", "/api/v3/propertymappings/provider/scope/")
    assert len(calls) == 2 and calls[0].query.count("managed=") == 3  # 3 of 4 results: two pages


def test_version_is_read_once_and_unsupported_versions_are_refused(authentik_double):
    with client_of(authentik_double) as client:
        assert client.version() == "2025.12.4" and client.version() == "2025.12.4"
    assert len(authentik_double.api_calls("GET", "/api/v3/admin/version/")) == 1
    for version in ("2024.8.3", "2027.2.0"):
        authentik_double.version = version
        with client_of(authentik_double) as client, pytest.raises(EcoctlError) as caught:
            client.version()
        assert str(caught.value).startswith(f"Authentik {version} is not supported: ecoctl speaks the API of "
                                            "Authentik 2025.x to 2026.x")


def test_no_token_and_forbidden_map_to_clear_messages(authentik_double):
    with AuthentikClient(authentik_double.base_url, "", **FAST) as client, pytest.raises(EcoctlError) as caught:
        client.get("/admin/version/")
    assert str(caught.value).startswith("no Authentik API token was sent")
    assert caught.value.body == {"detail": "Authentication credentials were not provided."}


def test_500_is_retried_then_an_error_that_points_at_the_logs(authentik_double):
    authentik_double.fail_next(4, status=500)
    with client_of(authentik_double) as client, pytest.raises(EcoctlError) as caught:
        client.get("/admin/version/")
    assert not isinstance(caught.value, Unreachable)
    assert "failed with HTTP 500 on GET /api/v3/admin/version/ (4 attempts)" in str(caught.value)
    assert "ecoctl logs authentik-server" in str(caught.value)


def test_backoff_is_exponential_and_bounded(authentik_double):
    slept: list[float] = []
    authentik_double.fail_next(6, status=503)
    with AuthentikClient(authentik_double.base_url, authentik_double.token, retries=6, backoff=0.5,
                         max_backoff=2.0, sleep=slept.append) as client:
        assert client.version() == "2025.12.4"
    assert slept == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]


def test_field_errors_read_as_one_line():
    assert field_errors({"slug": ["Application with this slug already exists."],
                         "provider": ["Application with this provider already exists."]}) == (
        "slug: Application with this slug already exists.; provider: Application with this provider already exists.")
    assert field_errors({"non_field_errors": ["Invalid data."]}) == "Invalid data."


def test_validation_error_carries_the_fields(authentik_double):
    authentik_double.add_client("loyalty")
    with client_of(authentik_double) as client, pytest.raises(AuthentikValidation) as caught:
        client.post("/core/applications/", {"name": "x", "slug": "loyalty", "provider": 1})
    assert caught.value.fields == {"slug": ["Application with this slug already exists."],
                                   "provider": ["Application with this provider already exists."]}


def test_wait_until_ready_names_what_is_missing_on_timeout(authentik_double):
    authentik_double.defaults_ready = False
    seen: list[list[str]] = []
    with client_of(authentik_double) as client, pytest.raises(EcoctlError) as caught:
        client.wait_until_ready(timeout=0.3, interval=0.1, on_progress=lambda missing, _: seen.append(missing))
    message = str(caught.value)
    assert "not ready after 0s, still missing: flow default-provider-authorization-implicit-consent, " \
           "flow default-provider-invalidation-flow, certificate 'authentik Self-signed Certificate', " \
           "scope mapping openid, scope mapping email, scope mapping profile" in message
    assert "ecoctl logs authentik-worker" in message
    assert len(seen) >= 2


@pytest.mark.parametrize("flag, missing", [("ready", "server (/-/health/ready/ does not answer 2xx)"),
                                           ("token_active", "API token (not accepted yet)")])
def test_wait_until_ready_waits_for_the_server_and_the_bootstrap_token(authentik_double, flag, missing):
    setattr(authentik_double, flag, False)
    seen: list[list[str]] = []
    timer = threading.Timer(0.4, setattr, (authentik_double, flag, True))
    timer.start()
    with client_of(authentik_double) as client:
        defaults = client.wait_until_ready(timeout=10, interval=0.1, on_progress=lambda m, _: seen.append(m))
    timer.join()
    assert seen[0] == [missing] and seen[-1] == []
    assert defaults.authorization_flow == authentik_double.flow_pk("default-provider-authorization-implicit-consent")


def test_wait_until_ready_returns_once_the_worker_made_the_defaults(authentik_double):
    authentik_double.defaults_ready = False
    timer = threading.Timer(0.3, setattr, (authentik_double, "defaults_ready", True))
    timer.start()
    seen: list[list[str]] = []
    with client_of(authentik_double) as client:
        client.wait_until_ready(timeout=10, interval=0.1, on_progress=lambda m, _: seen.append(m))
    timer.join()
    assert "flow default-provider-invalidation-flow" in seen[0] and seen[-1] == []


def test_wait_until_ready_on_a_closed_port_times_out_naming_the_server(closed_url):
    with AuthentikClient(closed_url, "t", **FAST) as client, pytest.raises(EcoctlError) as caught:
        client.wait_until_ready(timeout=0.2, interval=0.1)
    assert "still missing: server (/-/health/ready/ does not answer 2xx)" in str(caught.value)


@pytest.fixture
def closed_url():
    from tests.helpers import free_port

    return f"http://127.0.0.1:{free_port()}"



def test_a_web_page_instead_of_authentik_is_named():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>a login page</html>")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with AuthentikClient(f"http://127.0.0.1:{server.server_port}", "t", **FAST) as client:
            with pytest.raises(EcoctlError) as caught:
                client.version()
    finally:
        server.shutdown()
    assert "answered GET /api/v3/admin/version/ with something other than JSON" in str(caught.value)
