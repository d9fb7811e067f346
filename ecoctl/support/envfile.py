"""The ecosystem's `.env`: secrets and settings as KEY=VALUE lines, mode 0600, written atomically.

Values are generated URL-safe (no quoting, no `$`), so compose's interpolation reads them verbatim.
Existing values are never replaced unless a caller asks explicitly (`set(..., replace=True)`).
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from ecoctl.errors import UsageError
from ecoctl.support.atomic import follow_own_links, read_text, write_atomic

LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


class EnvFile:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lines: list[str] = []
        self.values: dict[str, str] = {}
        source = follow_own_links(self.path) if self.path.is_symlink() else self.path
        if source.exists():
            self._parse(read_text(source))

    def _parse(self, text: str) -> None:
        self._lines = text.splitlines()
        for number, line in enumerate(self._lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            match = LINE.match(line)
            if not match:
                raise UsageError(f"{self.path}:{number}: not a KEY=VALUE line: fix or remove it")
            value = match.group(2)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            self.values[match.group(1)] = value

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def set(self, key: str, value: str, *, replace: bool = False) -> bool:
        """Set KEY; returns True when the file content changes."""
        if key in self.values and (not replace or self.values[key] == value):
            return False
        if key in self.values:
            self._lines = [f"{key}={value}" if (m := LINE.match(line)) and m.group(1) == key else line
                           for line in self._lines]
        else:
            self._lines.append(f"{key}={value}")
        self.values[key] = value
        return True

    def ensure_secret(self, key: str, nbytes: int = 32) -> bool:
        return self.set(key, new_secret(nbytes))

    def remove(self, key: str) -> bool:
        if key not in self.values:
            return False
        del self.values[key]
        self._lines = [line for line in self._lines if not ((m := LINE.match(line)) and m.group(1) == key)]
        return True

    def save(self) -> None:
        write_atomic(self.path, "\n".join(self._lines) + "\n", mode=0o600)
