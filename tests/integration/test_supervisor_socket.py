"""supervisord's control socket at every length of the ecosystem's path: supervisord binds
`<socket>.<pid>` before it takes the socket's own name, so a path that fits a unix socket address
(107 bytes) only without that suffix must move to the private fallback folder too."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from ecoctl.runtimes.local.supervisor import Supervisor


@pytest.fixture
def short_tmp():
    """A folder with a short path (pytest's own may be longer than the lengths tried here)."""
    folder = Path(tempfile.mkdtemp(prefix="e", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("socket_length", [90, 99, 100, 104, 107, 112])
def test_supervisord_starts_whatever_the_length_of_its_socket_path(short_tmp, socket_length):
    base = short_tmp / "e"
    fixed = len(os.fsencode(str(base))) + len("/.ecoctl/supervisor/supervisor.sock")
    assert fixed < socket_length, "the test's folder is too long for this case"
    state_dir = base.with_name("e" + "x" * (socket_length - fixed)) / ".ecoctl"
    supervisor = Supervisor(state_dir, f"ecoctl-socket-{socket_length}")
    assert len(os.fsencode(str(supervisor.folder / "supervisor.sock"))) == socket_length
    supervisor.write_config([])
    try:
        supervisor.start()
        assert supervisor.answers()
        assert len(os.fsencode(str(supervisor.socket))) + len(".4194304") <= 107
    finally:
        supervisor.shutdown()
