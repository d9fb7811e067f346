"""supervisord for one ecosystem: its generated config file and its XML-RPC API over a unix socket.

The config holds every program's environment, secrets included, so it is written 0600 in a
0700 folder; secrets never reach a program's argv. Programs are changed the way
`supervisorctl update` does: rewrite the file, `reloadConfig`, then remove/add the groups that
differ. Every program is `autostart=false`: the runtime starts each one in the order it needs.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ecoctl.errors import EcoctlError
from ecoctl.runtimes.local.accounts import private_folder, socket_base, user_name, verify_private_dir
from ecoctl.support.atomic import write_atomic

UNIX_PATH_MAX = 107 - len(".4194304")
"""The longest socket path supervisord can use: it binds `<socket>.<its pid>` first (pids up to
4194304), then links the socket's own name to it."""
RUNNING_STATES = {"STARTING", "RUNNING", "BACKOFF", "STOPPING"}
FAILED_STATES = {"FATAL", "EXITED", "UNKNOWN"}
LOG_MAX_BYTES = "10MB"
LOG_BACKUPS = 3


@dataclass(frozen=True)
class Program:
    name: str
    argv: list[str]
    directory: str = "/"
    environment: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stopsignal: str = "TERM"
    stopwaitsecs: int = 10
    startsecs: int = 1
    autorestart: str = "unexpected"
    marks: tuple[str, ...] = ()
    """Paths only this program uses (data dir, config folder, venv): how a process it left behind
    is recognised (its argv, working directory or open files), whatever its title says."""

    def section(self, log_file: Path) -> str:
        lines = [
            f"[program:{self.name}]",
            f"command={_escape(shlex.join(self.argv))}",
            f"directory={_escape(self.directory)}",
            "autostart=false",
            f"autorestart={self.autorestart}",
            f"startsecs={self.startsecs}",
            "startretries=2",
            f"stopsignal={self.stopsignal}",
            f"stopwaitsecs={self.stopwaitsecs}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={_escape(str(log_file))}",
            f"stdout_logfile_maxbytes={LOG_MAX_BYTES}",
            f"stdout_logfile_backups={LOG_BACKUPS}",
        ]
        if self.user:
            lines.append(f"user={self.user}")
        if self.environment:
            pairs = ",".join(f'{key}="{_escape_env(value)}"'
                             for key, value in sorted(self.environment.items()))
            lines.append(f"environment={pairs}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    """supervisord expands `%(name)s` in values; a literal % is written %%."""
    return value.replace("%", "%%")


def _escape_env(value: str) -> str:
    """A value for `environment=KEY="value"`: supervisord's parser keeps backslashes verbatim
    and has no way to escape a quote or a line break inside one."""
    if any(char in value for char in "\"'\n\r"):
        raise EcoctlError("an environment value holds a quote or a line break, which supervisord "
                          "cannot carry: change that value in .env")
    return _escape(value)


PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR",
                  "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy",
                  "https_proxy", "no_proxy")
"""What supervisord (and so every program) keeps of ecoctl's environment; the rest (a user's tokens,
their tools' settings) is not the programs' business. Each program adds its own (the contract)."""


def program_base_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key in PASSED_THROUGH}


class Supervisor:
    """One supervisord, its files under `state_dir` (config and pidfile in `supervisor/`,
    program logs in `logs/`)."""

    def __init__(self, state_dir: Path, identifier: str):
        self.state_dir = Path(state_dir)
        self.identifier = identifier
        self.folder = self.state_dir / "supervisor"
        self.config_path = self.folder / "supervisord.conf"
        self.pidfile = self.folder / "supervisord.pid"
        self.logs_dir = self.state_dir / "logs"
        self.socket_record = self.folder / "socket-dir"
        """Names the socket's folder when `supervisor/supervisor.sock` is too long for a unix
        socket address (UNIX_PATH_MAX): a random folder made 0700 by us (see `prepare_socket`)."""

    @property
    def socket(self) -> Path:
        preferred = self.folder / "supervisor.sock"
        if len(os.fsencode(str(preferred))) <= UNIX_PATH_MAX:
            return preferred
        try:
            recorded = self.socket_record.read_text().strip()
        except OSError:
            recorded = ""
        return Path(recorded) / "supervisor.sock" if recorded else preferred

    def prepare_socket(self) -> Path:
        """The socket's folder exists, is ours and private (created 0700 by us when missing)."""
        import tempfile

        private_folder(self.folder, "supervisord's folder")
        socket = self.socket
        if socket.parent == self.folder:
            if len(os.fsencode(str(socket))) <= UNIX_PATH_MAX:
                return socket
        elif socket.parent.exists():
            verify_private_dir(socket.parent, "supervisord's socket folder")
            return socket
        folder = Path(tempfile.mkdtemp(prefix="ecoctl-", dir=socket_base()))  # 0700, random name
        write_atomic(self.socket_record, f"{folder}\n", mode=0o600)
        return folder / "supervisor.sock"

    def check_socket(self) -> bool:
        """Whether a socket is there; it and its folder must be ours (never talk to a server
        someone else may have put in place of ours)."""
        socket = self.socket
        verify_private_dir(socket.parent, "supervisord's socket folder")
        try:
            info = os.lstat(socket)
        except FileNotFoundError:
            return False
        if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.geteuid():
            raise EcoctlError(f"{socket} is not supervisord's socket of yours (owner "
                              f"{user_name(info.st_uid)}): refusing to use it; remove it and rerun")
        return True

    # -- files ------------------------------------------------------------------------------
    def log_file(self, program: str) -> Path:
        return self.logs_dir / f"{program}.log"

    def render(self, programs: list[Program]) -> str:
        sections = [
            "; generated by ecoctl for this ecosystem; rewritten on each `ecoctl up`\n",
            "[unix_http_server]",
            f"file={_escape(str(self.socket))}",
            "chmod=0700",
            "",
            "[supervisord]",
            f"logfile={_escape(str(self.log_file('supervisord')))}",
            f"logfile_maxbytes={LOG_MAX_BYTES}",
            f"logfile_backups={LOG_BACKUPS}",
            f"pidfile={_escape(str(self.pidfile))}",
            f"childlogdir={_escape(str(self.logs_dir))}",
            f"identifier={self.identifier}",
            "directory=/",
            "umask=022",
            "loglevel=info",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{_escape(str(self.socket))}",
            "",
        ]
        text = "\n".join(sections) + "\n"
        for program in programs:
            text += "\n" + program.section(self.log_file(program.name))
        return text

    def write_config(self, programs: list[Program]) -> bool:
        """Write the config; True when its content changed."""
        self.prepare_socket()
        private_folder(self.logs_dir, "the logs folder")
        text = self.render(programs)
        if self.config_path.exists() and self.config_path.read_text() == text:
            return False
        write_atomic(self.config_path, text, mode=0o600)
        return True

    # -- the daemon -------------------------------------------------------------------------
    def proxy(self):
        import xmlrpc.client  # here, not at the top: a stopped stack never needs it

        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, serverurl=f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def answers(self) -> bool:
        if not self.check_socket():
            return False
        import xmlrpc.client

        try:
            return self.proxy().getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    def pid(self) -> int | None:
        """supervisord's pid from its pidfile, when that process is still ours (`procfs.is_daemon_of`)."""
        from ecoctl.runtimes.local.procfs import is_daemon_of

        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) and is_daemon_of(pid, self.config_path, self.pidfile) else None

    def start(self, timeout: float = 15.0) -> bool:
        """Start supervisord with the current config file; False when it already answers."""
        if self.answers():
            return False
        result = subprocess.run(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
            env=program_base_environment())
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip().splitlines()
            raise EcoctlError(f"supervisord did not start: {message[-1] if message else 'no output'}"
                              f" (see {self.log_file('supervisord')})")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers():
                return True
            time.sleep(0.05)
        raise EcoctlError(f"supervisord did not answer on {self.socket} within {timeout:.0f}s: "
                          f"see {self.log_file('supervisord')}")

    def update(self) -> dict[str, list[str]]:
        """Apply the config file to the running daemon, like `supervisorctl update`.

        Returns {"added": [...], "changed": [...], "removed": [...]}; a changed program that was
        running is started again with its new settings.
        """
        import xmlrpc.client

        server = self.proxy()
        [[added, changed, removed]] = server.reloadConfig()
        running = {info["name"] for info in server.getAllProcessInfo()
                   if info["statename"] in RUNNING_STATES}
        for name in removed + changed:
            try:
                server.stopProcessGroup(name)
            except xmlrpc.client.Fault:
                pass
            server.removeProcessGroup(name)
        for name in added + changed:
            server.addProcessGroup(name)
        for name in changed:
            if name in running:
                self.start_program(name)
        return {"added": added, "changed": changed, "removed": removed}

    def shutdown(self, timeout: float = 60.0) -> bool:
        """Stop every program, then supervisord itself; False when it was not running."""
        pid = self.pid()
        if not self.answers():
            if pid is None:
                self.pidfile.unlink(missing_ok=True)  # stale: left by a crash or a reboot
                return False
            os.kill(pid, 15)  # supervisord stops its programs on SIGTERM too
        else:
            server = self.proxy()
            server.stopAllProcesses()  # waits for each program to stop, in reverse order
            server.shutdown()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pid is None or not alive(pid):
                break
            time.sleep(0.05)
        else:
            raise EcoctlError(f"supervisord (pid {pid}) did not exit within {timeout:.0f}s: "
                              f"see {self.log_file('supervisord')}")
        for path in (self.socket, self.pidfile):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        return True

    # -- programs ---------------------------------------------------------------------------
    def info(self, name: str) -> dict | None:
        import xmlrpc.client

        try:
            return self.proxy().getProcessInfo(name)
        except xmlrpc.client.Fault:
            return None

    def all_info(self) -> dict[str, dict]:
        if not self.answers():
            return {}
        return {info["name"]: info for info in self.proxy().getAllProcessInfo()}

    def start_program(self, name: str) -> bool:
        """Start a program and wait for it to pass `startsecs`; False when it was running."""
        import xmlrpc.client

        info = self.info(name)
        if info is not None and info["statename"] in ("RUNNING", "STARTING"):
            return False
        try:
            self.proxy().startProcess(name, True)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" in fault.faultString:
                return False
            raise EcoctlError(f"{name} did not start ({fault.faultString}): "
                              f"see {self.log_file(name)}") from None
        return True

    def stop_program(self, name: str) -> bool:
        import xmlrpc.client

        info = self.info(name)
        if info is None or info["statename"] not in RUNNING_STATES:
            return False
        try:
            self.proxy().stopProcess(name, True)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" not in fault.faultString:
                raise EcoctlError(f"{name} did not stop ({fault.faultString})") from None
        return True

    def signal_program(self, name: str, signal: str) -> bool:
        """Send SIGNAL (e.g. "HUP") to a running program; False when it is not running."""
        import xmlrpc.client

        info = self.info(name)
        if info is None or info["statename"] not in ("RUNNING", "STARTING"):
            return False
        try:
            self.proxy().signalProcess(name, signal)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" in fault.faultString:
                return False
            raise EcoctlError(f"could not signal {name} ({fault.faultString})") from None
        return True

    def remove_program(self, name: str) -> bool:
        if self.info(name) is None:
            return False
        self.stop_program(name)
        self.proxy().removeProcessGroup(name)
        return True


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
