"""The service contract, one suite for the portfolio service and every service template.

Each subject (subjects.SUBJECTS) runs as a real process against its own database on the test
PostgreSQL, trusting an issuer whose JWKS is served over loopback HTTP. What every ecoctl service
must do: refuse every bad token with 401, accept a good one, answer /healthz (503 when its database
is gone), expose the request metrics the dashboards query under the same label names, and answer
every error as an RFC 9457 problem (`application/problem+json` with type, title, status).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.contract.subjects import SUBJECTS, served, set_login

PROBLEM = "application/problem+json"
REQUEST_LABELS = {"method", "path", "status"}
DURATION_LABELS = {"method", "path"}


@pytest.fixture(scope="module", params=SUBJECTS, ids=[s.name for s in SUBJECTS])
def service(request, pg, commands, tmp_path_factory):
    subject = request.param
    with served(subject, commands(subject), pg, tmp_path_factory.mktemp("logs"), "contract") as running:
        yield running


def get(service, token: str | None = None, path: str | None = None, scheme: str = "Bearer") -> httpx.Response:
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    return service.client.get(path or service.subject.protected_path, headers=headers)


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM, response.headers
    body = response.json()
    assert body["status"] == status, body
    assert isinstance(body["type"], str) and body["type"], body
    assert isinstance(body["title"], str) and body["title"], body
    return body


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict, claims: dict, sign) -> str:
    """A JWT built by hand, for what PyJWT refuses to make (HS256 keyed with a public key)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def valid(service, **overrides):
    return service.issuer.token(**overrides)


def bad_signature(service):
    from cryptography.hazmat.primitives.asymmetric import rsa

    # the issuer's key id, another key
    return service.issuer.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))


def alg_none(service):
    return hand_made({"alg": "none", "typ": "JWT", "kid": service.issuer.kid}, service.issuer.claims(),
                     lambda _: b"")


def hs256_with_public_key(service):
    """The classic confusion attack: HMAC keyed with the issuer's public key (PEM), which a verifier
    that lets the token pick its algorithm would accept."""
    pem = service.issuer.public_pem()
    return hand_made({"alg": "HS256", "typ": "JWT", "kid": service.issuer.kid}, service.issuer.claims(),
                     lambda data: hmac.new(pem, data, hashlib.sha256).digest())


REFUSED = {
    "bad signature": bad_signature,
    "expired": lambda s: valid(s, iat=int(time.time()) - 3600, exp=int(time.time()) - 600),
    "wrong audience": lambda s: valid(s, aud="another-service"),
    "wrong issuer": lambda s: valid(s, iss=s.issuer.issuer.replace("/o/", "/o/evil-")),
    "alg none": alg_none,
    "HS256 with the public key": hs256_with_public_key,
    "empty sub": lambda s: valid(s, sub=""),
    "no sub": lambda s: valid(s, sub=None),
    "no exp": lambda s: valid(s, exp=None),
    "not a JWT": lambda s: "not.a.jwt",
}


def test_no_token_is_a_401_problem_with_a_bearer_challenge(service):
    response = get(service)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_token_is_a_401_problem(service, case):
    response = get(service, REFUSED[case](service))
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer"), case


def test_another_scheme_is_a_401_problem(service):
    assert_problem(get(service, "dXNlcjpwYXNz", scheme="Basic"), 401)


def test_valid_token_is_accepted(service):
    response = get(service, valid(service))
    assert response.status_code == 200, response.text


def test_a_granted_web_apps_token_is_accepted_and_only_with_its_pair_and_keys(service):
    """OIDC_ACCEPTED_CLIENTS (ecoctl sets it under Authentik, which issues a web app's token under the
    web app's own issuer, `aud` its client id): that (iss, aud) pair is accepted, checked against that
    issuer's own JWKS; the API's audience under the web app's issuer, the web app's audience under the
    API's issuer, and the web app's issuer signed with the API issuer's key are all refused."""
    web_app = service.web_app
    assert get(service, web_app.token()).status_code == 200
    for token in (web_app.token(aud=service.issuer.audience), service.issuer.token(aud=web_app.audience),
                  service.issuer.token(iss=web_app.issuer, aud=web_app.audience)):
        assert_problem(get(service, token), 401)


def test_healthz_answers_without_a_token(service):
    response = get(service, path="/healthz")
    assert response.status_code == 200, response.text
    assert response.json()["database"] == "ok"


@pytest.mark.parametrize("token", ["none", "valid", "refused"])
@pytest.mark.parametrize("path", ["/no/such/path", "/healthz/"])
def test_a_path_no_route_serves_is_a_404_problem_token_or_not(service, path, token):
    tokens = {"none": None, "valid": valid(service), "refused": "not.a.jwt"}
    assert_problem(get(service, tokens[token], path=path), 404)


def metric_labels(service) -> dict[str, list[dict[str, str]]]:
    response = get(service, path="/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample.labels)
    return found


def test_metrics_have_the_contract_names_and_labels(service):
    protected = service.subject.protected_path
    assert get(service).status_code == 401
    assert get(service, valid(service)).status_code == 200
    assert get(service, valid(service), path="/no/such/path").status_code == 404
    samples = metric_labels(service)
    requests = samples["http_requests_total"]
    assert all(set(labels) == REQUEST_LABELS for labels in requests), requests
    for name in ("http_request_duration_seconds_count", "http_request_duration_seconds_sum"):
        assert all(set(labels) == DURATION_LABELS for labels in samples[name]), samples[name]
    assert all(set(labels) == DURATION_LABELS | {"le"} for labels in samples["http_request_duration_seconds_bucket"])
    seen = {(labels["method"], labels["path"], labels["status"]) for labels in requests}
    # by route template, refusals included; paths no route serves under one label value
    assert {("GET", protected, "401"), ("GET", protected, "200"), ("GET", "unmatched", "404")} <= seen, seen
    assert not any(labels["path"] == "/no/such/path" for labels in requests)


def test_documentation_is_labelled_by_route_and_scrapes_are_not_counted(service):
    assert get(service, path="/healthz").status_code == 200
    for path in service.subject.docs:
        assert get(service, path=path).status_code == 200, path
    for _ in range(2):  # Prometheus's scrapes
        metric_labels(service)
    samples = metric_labels(service)
    requests = samples["http_requests_total"]
    seen = {(labels["method"], labels["path"], labels["status"]) for labels in requests}
    assert {("GET", path, "200") for path in service.subject.docs} <= seen, seen
    counted = {labels["path"] for name in ("http_requests_total", "http_request_duration_seconds_count")
               for labels in samples[name]}
    assert "/metrics" not in counted, counted


BUCKETS = ["0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256", "0.512", "1.024",
           "2.048", "4.096", "8.192", "+Inf"]
"""The latency buckets of every service, as its /metrics writes them: 1 ms doubling to 8.192 s."""


def test_latency_buckets_resolve_milliseconds_and_read_the_same_in_every_language(service):
    import re

    assert get(service, path="/healthz").status_code == 200
    text = get(service, path="/metrics").text
    series = [line for line in text.splitlines() if line.startswith("http_request_duration_seconds_bucket{")
              and 'path="/healthz"' in line and 'method="GET"' in line]
    # the `le` label as written (a parser could normalise "1" and "1.0"; a query across jobs does not)
    assert [re.search(r'le="([^"]*)"', line).group(1) for line in series] == BUCKETS, series


def test_healthz_is_a_503_problem_while_the_database_is_gone(service, pg):
    set_login(pg.conninfo(), service.database, service.role, allowed=False)
    try:
        assert_problem(get(service, path="/healthz"), 503)
    finally:
        set_login(pg.conninfo(), service.database, service.role, allowed=True)
    # and healthy again once it is back
    deadline = time.monotonic() + 60
    while get(service, path="/healthz").status_code != 200:
        assert time.monotonic() < deadline, f"{service.subject.name} did not recover:\n{service.output()}"
        time.sleep(0.5)


MIB = 1024 * 1024


def post_raw(service, headers: dict[str, str], first: list[bytes], rest: list[bytes] = ()) -> tuple[int, str, dict]:
    """POST to the subject's data path over a raw socket: send the `first` body parts, read the answer
    (so it must come before the rest of the body is sent), then send `rest` (the server may have
    closed: ignored). Returns (status, content type, body)."""
    import http.client
    import socket
    import threading

    port = int(service.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    head = "".join(f"{key}: {value}\r\n" for key, value in {
        "Host": f"127.0.0.1:{port}", "Content-Type": "application/json", **headers}.items())
    answered = threading.Event()

    def send_body():
        try:
            sock.sendall(f"POST {service.subject.data_path} HTTP/1.1\r\n{head}\r\n".encode())
            for part in first:
                sock.sendall(part)
            answered.wait(20)
            for part in rest:
                sock.sendall(part)
        except OSError:
            pass  # the server closed the connection after its answer

    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    try:
        response = http.client.HTTPResponse(sock)
        response.begin()
        status, content_type, body = response.status, response.getheader("content-type", ""), response.read()
    finally:
        answered.set()
        sender.join(60)
        sock.close()
    return status, content_type, json.loads(body)


def rss(service) -> int:
    """The subject process's resident memory, in bytes."""
    with open(f"/proc/{service.process.pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_a_large_body_without_a_token_is_refused_before_it_is_read(service):
    before = rss(service)
    status, content_type, body = post_raw(service, {"Content-Length": str(200 * MIB)}, [b"x" * 65536] * 4,
                                          rest=[b"x" * MIB] * 64)
    assert (status, content_type.split(";")[0], body["status"]) == (401, PROBLEM, 401), body
    grown = rss(service) - before
    assert grown < 16 * MIB, f"the refused body was kept in memory: {grown / MIB:.0f} MiB more"


def test_a_body_over_the_limit_is_a_413_problem_after_the_token(service):
    token = {"Authorization": f"Bearer {valid(service)}"}
    status, content_type, body = post_raw(service, {**token, "Content-Length": str(200 * MIB)}, [b"x" * 65536])
    assert (status, content_type.split(";")[0], body["status"]) == (413, PROBLEM, 413), body
    # a body of unknown length (chunked) is refused once it passes the limit, and never held whole
    post_raw(service, {**token, "Content-Length": "2"}, [b"{}"])  # the write path's code loaded
    before = rss(service)
    parts = [chunked(b" " * MIB)] * 64 + [b"0\r\n\r\n"]
    status, content_type, body = post_raw(service, {**token, "Transfer-Encoding": "chunked"}, parts)
    assert (status, content_type.split(";")[0], body["status"]) == (413, PROBLEM, 413), body
    grown = rss(service) - before
    assert grown < 16 * MIB, f"the body was read into memory: {grown / MIB:.0f} MiB more"
    # a body within the limit is read as before
    assert get(service, valid(service)).status_code == 200
