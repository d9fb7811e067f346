"""The local runtime's program paths and start failures: a program found through a link on PATH
runs from the link's target when that keeps its name (a folder of links may be closed to the
programs' user), and a failed start names the log line that says why."""

from __future__ import annotations

from types import SimpleNamespace

from ecoctl.runtimes.local import LocalRuntime
from ecoctl.runtimes.local.core import through_links


def test_a_link_of_the_same_name_is_followed_a_link_to_another_name_is_kept(tmp_path):
    usr_bin, farm = tmp_path / "usr/bin", tmp_path / "farm"
    usr_bin.mkdir(parents=True)
    farm.mkdir()
    (usr_bin / "caddy").write_text("")
    (usr_bin / "redis-check-rdb").write_text("")
    (usr_bin / "redis-server").symlink_to("redis-check-rdb")  # Debian's: the name picks the mode
    (farm / "caddy").symlink_to(usr_bin / "caddy")
    (farm / "redis-server").symlink_to(usr_bin / "redis-server")
    (farm / "other").symlink_to(usr_bin / "caddy")
    assert through_links(str(farm / "caddy")) == str(usr_bin / "caddy")
    assert through_links(str(farm / "redis-server")) == str(usr_bin / "redis-server")
    assert through_links(str(farm / "other")) == str(farm / "other")
    assert through_links(str(usr_bin / "caddy")) == str(usr_bin / "caddy")


def failure(tmp_path, text: str) -> str:
    log = tmp_path / "edge.log"
    log.write_text(text)
    runtime = SimpleNamespace(supervisor=SimpleNamespace(log_file=lambda name: log))
    return LocalRuntime._failure_line(runtime, "edge")


def test_a_failed_start_says_why_not_only_not_spawned(tmp_path):
    assert failure(tmp_path, "supervisor: couldn't exec /x/caddy: EACCES\n"
                             "supervisor: child process was not spawned\n") == "supervisor: couldn't exec /x/caddy: EACCES"
    caddy = ('{"level":"info","msg":"using provided configuration"}\n'
             '{"level":"error","msg":"listen tcp :8443: bind: address already in use"}\n'
             '{"level":"info","msg":"shutdown complete"}\n')
    assert "address already in use" in failure(tmp_path, caddy)
    assert failure(tmp_path, "Error: loading initial config: open Caddyfile: permission denied\n").startswith("Error:")
