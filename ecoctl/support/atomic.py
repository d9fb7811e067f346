"""Atomic file writes: a reader sees the old file or the new one, never half of either.

A symlink is written through (its target is replaced, the link stays). A write that was killed
leaves a `.NAME.ecoctl-XXXXXXXX.tmp` file (or, from `write_tree`, folder) behind: the first write
of a process in that folder removes ours (that name, our owner) older than `STALE_SECONDS`. A
symlink is followed only through links owned by you or root, and only to a folder that exists. `read_text` reads a user's file with
one size cap and one UTF-8 error.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from ecoctl.errors import UsageError

MAX_BYTES = 1 << 20
"""Largest file a user hands ecoctl (1 MiB): ecosystem.yaml and .env are a few KB."""
STALE_SECONDS = 300
TEMP_MARK = "ecoctl-"
TEMP_FILE = re.compile(r"^\..+\.ecoctl-[a-z0-9_]{8}\.tmp$")
"""What `tempfile.mkstemp(prefix=temp_prefix(NAME), suffix=".tmp")` names (8 random characters):
only those are ever cleaned, never a user's own `.draft.mynotes1.tmp`."""
MAX_LINKS = 40


def temp_prefix(name: str) -> str:
    """The prefix of a temporary file or folder ecoctl writes NAME through (see TEMP_FILE)."""
    return f".{name}.{TEMP_MARK}"


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


_CLEANED: set[str] = set()
"""Folders this process has cleaned: a stale file comes from another, killed, process."""


def clean_stale_temp_files(folder: Path, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove temp files and folders of killed writes (ours by name and owner) older than
    OLDER_THAN seconds."""
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
            if info.st_uid != os.getuid() or info.st_mtime >= cutoff:
                continue
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
            elif entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                continue
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def write_atomic(path: Path, content: str | bytes, mode: int | None = None, durable: bool = True) -> None:
    """Replace `path` atomically; `durable=False` skips the fsync, for files ecoctl can regenerate."""
    path = Path(path)
    if path.is_symlink():  # write through the link: replacing it would cut it
        link, path = path, follow_own_links(path)
        if not path.parent.is_dir():
            raise UsageError(f"{link}: a symlink to {path}, whose folder does not exist: create the folder "
                             "(ecoctl makes none for a link), or replace the link with a file")
    _prepare_folder(path.parent)
    if mode is None:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    data = content.encode() if isinstance(content, str) else content
    _in_folder(path.parent, lambda: replace_file(path, data, mode, durable=durable))


def follow_own_links(path: Path) -> Path:
    """PATH with every symlink on its way resolved, as `os.path.realpath` would, each one owned by
    you or root: another user's link (who could point it at any file of yours) is a UsageError."""
    import stat

    me, pending, done, hops = os.geteuid(), list(Path(os.path.abspath(path)).parts[1:]), Path("/"), 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            done = done.parent
            continue
        step = done / part
        try:
            info = os.lstat(step)
        except FileNotFoundError:
            return Path(os.path.normpath(step.joinpath(*pending)))  # nothing further exists to follow
        if not stat.S_ISLNK(info.st_mode):
            done = step
            continue
        if info.st_uid not in (me, 0):
            raise UsageError(f"{path}: the symlink {step} belongs to another user (uid {info.st_uid}): ecoctl "
                             "follows only links of yours or root's; replace it with a file or a link of yours")
        hops += 1
        if hops > MAX_LINKS:
            raise UsageError(f"{path}: a symlink that loops: point it at a file, or remove it")
        target = os.readlink(step)
        pending = list(Path(target).parts) + pending
        if target.startswith("/"):
            done, pending = Path("/"), pending[1:]
    return done


def replace_file(path: Path, data: bytes, mode: int, *, durable: bool = True,
                 owner: tuple[int, int] | None = None) -> None:
    """PATH (itself, never through a symlink) replaced by a new file beside it holding DATA, given
    MODE and OWNER (uid, gid) before it holds anything; on any failure the new file is removed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
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


def write_tree(folder: Path, files: dict[str, bytes], mode: int = 0o644) -> bool:
    """Create FOLDER holding FILES (relative POSIX path -> content) all at once: written into a
    temporary sibling, renamed into place; a reader sees no folder or the whole one. False (nothing
    written) when FOLDER exists already: the caller writes file by file then. Not fsynced: for
    files ecoctl can render again."""
    folder = Path(folder)
    if folder.exists() or folder.is_symlink():
        return False
    _prepare_folder(folder.parent)
    staging = Path(_in_folder(folder.parent, lambda: tempfile.mkdtemp(dir=folder.parent, prefix=temp_prefix(folder.name),
                                                                      suffix=".tmp")))
    try:
        made = {staging}
        for relative, content in files.items():
            target = staging / relative
            for parent in reversed(target.relative_to(staging).parents[:-1]):
                if staging / parent not in made:
                    (staging / parent).mkdir(mode=0o755)
                    (staging / parent).chmod(0o755)  # whatever the umask, as the top folder
                    made.add(staging / parent)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            os.fchmod(fd, mode)
            with open(fd, "wb") as handle:
                handle.write(content)
        staging.chmod(0o755)
        os.rename(staging, folder)  # an existing FOLDER (made meanwhile) is refused, not replaced
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if folder.exists():
            return False
        raise
    return True


def _prepare_folder(folder: Path) -> None:
    """FOLDER made and cleaned of stale temp files, once a process (not at each of its writes)."""
    if str(folder) not in _CLEANED:
        folder.mkdir(parents=True, exist_ok=True)
        clean_stale_temp_files(folder)
        _CLEANED.add(str(folder))


def _in_folder(folder: Path, make):
    """`make()` (a temp file or folder in FOLDER), FOLDER made again if it went away since this
    process first wrote there."""
    try:
        return make()
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True)
        return make()
