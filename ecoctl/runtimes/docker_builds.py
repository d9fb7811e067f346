"""Which service images need a build: a digest of each build context (its files, less what a
`.dockerignore` commonly leaves out: caches, virtualenvs, build output), the base image's id and the
build's image name, kept in `.ecoctl/builds.json` with the id of the image that build produced.

An image is rebuilt when its context, its base image or the image itself (removed, retagged)
changed since ecoctl built it; otherwise `up` passes no build at all (no builder output, no
container recreated).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ecoctl.support.atomic import write_atomic

SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".venv", ".git", ".mypy_cache", ".ruff_cache", "build", "dist"}
RECORD = "builds.json"


def context_digest(folder: Path, base_image_id: str | None, image: str) -> str:
    """The digest of a build context: every file's path, mode and bytes (caches left out)."""
    digest = hashlib.sha256(f"{image}\0{base_image_id}\0".encode())
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not d.endswith(".egg-info"))
        for filename in sorted(filenames):
            if filename.endswith((".pyc", ".pyo")):
                continue
            path = Path(dirpath) / filename
            relative = path.relative_to(folder).as_posix()
            try:
                data = path.read_bytes()
                mode = path.stat().st_mode & 0o777
            except OSError:  # vanished or unreadable: let the build decide
                data, mode = b"?", 0
            digest.update(f"{relative}\0{mode:o}\0{len(data)}\0".encode() + data)
    return digest.hexdigest()


class BuildRecord:
    """`.ecoctl/builds.json`: service -> the context digest and image id of its last build."""

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / RECORD
        try:
            self.entries = json.loads(self.path.read_text())
            if not isinstance(self.entries, dict):
                self.entries = {}
        except (OSError, ValueError):
            self.entries = {}

    def up_to_date(self, key: str, digest: str, image_id: str | None) -> bool:
        entry = self.entries.get(key)
        return (image_id is not None and isinstance(entry, dict) and entry.get("digest") == digest
                and entry.get("image") == image_id)

    def record(self, key: str, digest: str, image_id: str | None) -> None:
        if image_id is None:
            self.entries.pop(key, None)
        else:
            self.entries[key] = {"digest": digest, "image": image_id}
        write_atomic(self.path, json.dumps(self.entries, indent=1, sort_keys=True) + "\n", mode=0o600,
                     durable=False)
