"""What /proc says about processes: which one holds a listening port, which run a given argv."""

from __future__ import annotations

import os
from pathlib import Path


def listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds the socket listening on `port` (True when /proc cannot tell)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    wanted = {f"socket:[{inode}]" for inode in inodes}
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return True
    for fd in fds:
        try:
            if os.readlink(fd) in wanted:
                return True
        except OSError:
            continue
    return False




def processes_by_argv(argvs: set[tuple[str, ...]]) -> dict[int, tuple[str, ...]]:
    """pid -> argv of every process (but this one) whose command line is exactly one of ARGVS."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = tuple(arg.decode(errors="replace")
                         for arg in (entry / "cmdline").read_bytes().split(b"\0")[:-1])
        except OSError:
            continue
        if argv in argvs and int(entry.name) != os.getpid():
            found[int(entry.name)] = argv
    return found
