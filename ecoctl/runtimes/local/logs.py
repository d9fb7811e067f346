"""Reading the programs' log files: the last lines, and new lines as they come (`tail -F`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator


def tail_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of a file, read from its end."""
    if count <= 0 or not path.exists():
        return []
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        position = handle.tell()
        data = b""
        while position > 0 and data.count(b"\n") <= count:
            step = min(65536, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data.decode(errors="replace").splitlines()
    return lines[-count:]



def follow(path: Path, interval: float = 0.25) -> Iterator[str]:
    """New lines appended to `path`, `tail -F` style (survives rotation and truncation)."""
    handle = None
    inode = None
    try:
        while True:
            if handle is None:
                try:
                    handle = open(path, "rb")
                    inode = os.fstat(handle.fileno()).st_ino
                    handle.seek(0, os.SEEK_END)
                except FileNotFoundError:
                    time.sleep(interval)
                    continue
            line = handle.readline()
            if line.endswith(b"\n"):
                yield line.decode(errors="replace").rstrip("\n")
                continue
            if line:
                handle.seek(-len(line), os.SEEK_CUR)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is None or current.st_ino != inode or current.st_size < handle.tell():
                handle.close()
                handle = None
                if current is not None:  # rotated or truncated: read the new file from its start
                    handle = open(path, "rb")
                    inode = os.fstat(handle.fileno()).st_ino
                continue
            time.sleep(interval)
    finally:
        if handle is not None:
            handle.close()
