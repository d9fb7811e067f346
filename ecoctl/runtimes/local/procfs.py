"""What /proc says about processes: which one holds a listening port, which run a given argv, and
whether a pid read from a pidfile is still the process that wrote it."""

from __future__ import annotations

import os
from pathlib import Path


def listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds the socket listening on `port` (True when /proc cannot tell).
    Where /proc lists another user's descriptors but hides their targets (root in a container
    without CAP_SYS_PTRACE), whether a socket of that process's user listens there."""
    wanted = _listening_sockets(port)
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return True
    hidden = False
    for fd in fds:
        try:
            if os.readlink(fd) in wanted:
                return True
        except PermissionError:
            hidden = True
        except OSError:
            continue
    return hidden and _uid_of(pid) in wanted.values()


def _uid_of(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _listening_sockets(port: int) -> dict[str, int]:
    """"socket:[inode]" -> owner uid of each socket listening on PORT."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                sockets[f"socket:[{fields[9]}]"] = int(fields[7])
    return sockets


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _links(pid: int) -> list[str]:
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return []
    links = []
    for fd in fds:
        try:
            links.append(os.readlink(fd))
        except OSError:
            continue
    return links


def port_holders(port: int) -> list[int]:
    """The processes holding the socket that listens on PORT (those /proc lets us see)."""
    wanted = _listening_sockets(port).keys()
    if not wanted:
        return []
    return [pid for pid in _pids() if pid != os.getpid() and wanted & set(_links(pid))]


def _under(path: str, mark: str) -> bool:
    return path == mark or path.startswith(mark.rstrip("/") + "/")


def describe(pid: int) -> tuple[tuple[str, ...], str, str, int]:
    """argv, executable, working directory and parent pid of PID (empty when unreadable)."""
    base = Path(f"/proc/{pid}")
    try:
        argv = tuple(arg.decode(errors="replace") for arg in (base / "cmdline").read_bytes().split(b"\0") if arg)
        ppid = int((base / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return (), "", "", 0
    try:
        exe = os.readlink(base / "exe").removesuffix(" (deleted)")
        cwd = os.readlink(base / "cwd")
    except OSError:
        exe = cwd = ""
    return argv, exe, cwd, ppid


def leftovers(programs: list, skip: set[int] = frozenset()) -> dict[int, tuple[object, int]]:
    """pid -> (program, parent pid) for each process that is one of PROGRAMS run by a supervisord
    that died: exactly its argv, or its binary with one of its `marks` (data dir, config or venv
    folder) in its argv, as its working directory or among its open files. Process titles are
    not trusted: Redis and PostgreSQL's children rename themselves."""
    by_argv = {tuple(program.argv): program for program in programs}
    by_exe: dict[str, list] = {}
    for program in programs:
        if program.marks and os.path.isabs(program.argv[0]):
            by_exe.setdefault(os.path.realpath(program.argv[0]), []).append(program)
    found = {}
    for pid in _pids():
        if pid == os.getpid() or pid in skip:
            continue
        argv, exe, cwd, ppid = describe(pid)
        if not argv and not exe:
            continue
        program = by_argv.get(argv)
        for candidate in by_exe.get(exe, []) if program is None else []:
            marks = candidate.marks
            if any(_under(cwd, mark) or any(mark in arg for arg in argv) for mark in marks) or \
                    any(_under(link, mark) for link in _links(pid) for mark in marks):
                program = candidate
                break
        if program is not None:
            found[pid] = (program, ppid)
    return found


def started_at(pid: int) -> float | None:
    """When PID started (seconds since the epoch), from its stat and the boot time; None when unreadable."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def is_daemon_of(pid: int, config: Path, pidfile: Path) -> bool:
    """Whether PID is still the supervisord that wrote PIDFILE for CONFIG: of your user, running
    `supervisord` with CONFIG in its argv, and started before PIDFILE was written (a pid left in
    a pidfile after a crash or a reboot may be any other process's by now)."""
    argv, _, _, _ = describe(pid)
    if _uid_of(pid) != os.geteuid() or str(config) not in argv \
            or not any(arg.endswith(("supervisord", "supervisor.supervisord")) for arg in argv):
        return False
    started = started_at(pid)
    try:
        written = pidfile.stat().st_mtime
    except OSError:
        return False
    return started is not None and started <= written + 1.0  # clock ticks and boot time are rounded
