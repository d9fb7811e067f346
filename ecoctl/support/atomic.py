"""Atomic file writes: a reader sees the old file or the new one, never half of either.

A symlink is written through (its target is replaced, the link stays). A write that was killed
leaves a `.NAME.XXXXXXXX.tmp` behind: the next write in that folder removes ours older than
`STALE_SECONDS`. `read_text` reads a user's file with one size cap and one UTF-8 error.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

from ecoctl.errors import UsageError

MAX_BYTES = 1 << 20
"""Largest file a user hands ecoctl (1 MiB): ecosystem.yaml and .env are a few KB."""
STALE_SECONDS = 300
TEMP_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")
"""What `tempfile.mkstemp(prefix=".NAME.", suffix=".tmp")` names (8 random characters)."""


def read_text(path: Path | str, max_bytes: int = MAX_BYTES) -> str:
    """A user's file as text: at most MAX_BYTES, UTF-8; anything else is one UsageError (exit 2)."""
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UsageError(f"{path}: larger than {max_bytes // 1024} KiB: this is not a file ecoctl "
                         "wrote; check the path")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}): save it as "
                         "UTF-8") from None


def clean_stale_temp_files(folder: Path, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove temp files of killed writes (ours by name and owner) older than OLDER_THAN seconds."""
    removed = []
    cutoff = time.time() - older_than
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not TEMP_FILE.match(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if entry.is_file(follow_symlinks=False) and info.st_uid == os.getuid() and info.st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def write_atomic(path: Path, content: str | bytes, mode: int | None = None, durable: bool = True) -> None:
    """Replace `path` atomically; `durable=False` skips the fsync, for files ecoctl can regenerate."""
    path = Path(path)
    if path.is_symlink():  # write through the link: replacing it would cut it
        try:
            path = path.resolve(strict=False)
        except (OSError, RuntimeError):
            raise UsageError(f"{path}: a symlink that loops: point it at a file, or remove it") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temp_files(path.parent)
    if mode is None:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    data = content.encode() if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
