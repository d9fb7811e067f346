"""Every service while its database is away: a request that needs the database is answered with a
503 problem within 3 s (never a hang, never a 500), and the service is healthy again within 5 s of
the database's return. The database is a real PostgreSQL of this module's own, stopped and started
again under the running service (the session's server is shared with other tests: never stopped)."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from ecoctl.runtimes.local.postgres import PostgresServer
from tests.contract.subjects import SUBJECTS, free_port, served
from tests.contract.test_service_contract import assert_problem, get, valid

ANSWER_WITHIN = 3.0
BACK_WITHIN = 5.0


@pytest.fixture(scope="module")
def own_pg():
    """A PostgreSQL server this module may stop (its data in a temporary folder)."""
    import os

    base = Path(tempfile.mkdtemp(prefix="ecoctl-outage-pg-"))
    os.chmod(base, 0o711)  # the server may run as the unprivileged `ecoctl` user
    server = PostgresServer(data_dir=base / "data", port=free_port(), password=secrets.token_urlsafe(24))
    server.log = base / "postgres.log"
    server.start(log_file=server.log)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=SUBJECTS, ids=[s.name for s in SUBJECTS])
def service(request, own_pg, commands, tmp_path):
    if own_pg.process is None or own_pg.process.poll() is not None:
        own_pg.start(log_file=own_pg.log)  # a previous subject's test failed while it was stopped
    with served(request.param, commands(request.param), own_pg, tmp_path, "outage") as running:
        yield running


def timed(service, path: str, token: str | None = None) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = get(service, token, path=path)
    return response, time.monotonic() - started


def test_database_away_is_a_prompt_503_and_its_return_a_prompt_recovery(service, own_pg):
    token = valid(service)
    paths = ("/healthz", service.subject.data_path)
    for path in paths:
        assert timed(service, path, token)[0].status_code == 200, path
    own_pg.stop()
    try:
        for attempt in range(2):  # at once, and again once the service has seen it gone
            for path in paths:
                response, took = timed(service, path, token)
                assert_problem(response, 503)
                assert took < ANSWER_WITHIN, f"{path} took {took:.1f} s to answer 503 (attempt {attempt + 1})"
    finally:
        own_pg.start(log_file=own_pg.log)
    back = time.monotonic()
    pending = set(paths)
    while pending:
        for path in sorted(pending):
            response, took = timed(service, path, token)
            assert response.status_code in (200, 503), response.text
            if response.status_code == 200:
                pending.discard(path)
        elapsed = time.monotonic() - back
        assert elapsed < BACK_WITHIN, (f"{sorted(pending)} still not answering {elapsed:.1f} s after the database "
                                       f"returned:\n{service.output()}")
        time.sleep(0.1)
