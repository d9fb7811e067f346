"""Stale-temp cleanup removes only what ecoctl's writer makes (issue 27, item 14): a user's own
`.draft.mynotes1.tmp` and `.backup.20241201.tmp/` looked like ecoctl's `.NAME.XXXXXXXX.tmp` and
were deleted by the next write in their folder."""

import os
import subprocess
import sys
import time

from ecoctl.commands.init import init_ecosystem
from tests.helpers import run_ecoctl


def aged(path) -> None:
    old = time.time() - 3600
    os.utime(path, (old, old))


def test_a_users_own_tmp_files_and_folders_survive_the_next_write(tmp_path):
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    mine = [root / ".draft.mynotes1.tmp", root / ".env.20241201.tmp", root / ".compose.yaml.k3j_x9a2.tmp",
            root / "services" / ".old.portfolio.tmp"]
    for path in mine:
        path.write_text("my notes\n")
        aged(path)
    backup = root / ".backup.20241201.tmp"
    backup.mkdir()
    (backup / "ecosystem.yaml").write_text("name: old\n")
    aged(backup)
    ours = root / ".compose.yaml.ecoctl-k3j_x9a2.tmp"  # a killed write of ecoctl's own
    ours.write_text("half")
    aged(ours)
    result = run_ecoctl("add-service", "edge", "--no-apply", cwd=root)  # writes ecosystem.yaml, .env, compose.yaml, services/
    assert result.returncode == 0, result.stderr
    assert all(path.read_text() == "my notes\n" for path in mine)
    assert (backup / "ecosystem.yaml").read_text() == "name: old\n"
    assert not ours.exists()


def test_ecoctls_own_temp_names_are_what_the_cleanup_removes(tmp_path):
    """A write killed mid-way leaves a name the next process cleans (the writer and the cleanup agree)."""
    probe = ("import os, signal, tempfile\n"
             "from ecoctl.support import atomic\n"
             "def killed(*args, **kwargs):\n"
             "    fd, name = original(*args, **kwargs)\n"
             "    print(name, flush=True)\n"
             "    os.kill(os.getpid(), signal.SIGKILL)\n"
             "original, tempfile.mkstemp = tempfile.mkstemp, killed\n"
             f"atomic.write_atomic({str(tmp_path / 'compose.yaml')!r}, 'x')\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    left = done.stdout.strip()
    assert left and os.path.exists(left), done.stderr
    aged(left)
    subprocess.run([sys.executable, "-c", f"from ecoctl.support.atomic import write_atomic; "
                    f"write_atomic({str(tmp_path / 'other.yaml')!r}, 'y')"], check=True)
    assert not os.path.exists(left)
