"""Add new entries to a top-level block mapping of a YAML file by inserting their text, so a new
service does not cost a round-trip parse and dump of the whole file (compose.yaml: ~45 ms).

The entries are dumped with ecoctl's round-trip style (`support.yaml.roundtrip`) at the indentation
the round-trip dump of the whole document would give them, and inserted where that mapping ends;
every other byte of the file stays as it was. Only for the plain case (block style, 2-space
indentation, `\\n` line ends, keys not present yet); the result is read back and must hold exactly
the old data plus the new entries, else None is returned and the caller edits round-trip.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ecoctl.errors import UsageError
from ecoctl.support.yaml import dump_roundtrip, fast_load

_OTHER_LINE_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def appended(path: Path | str, text: str, data: dict, key: str, entries: dict[str, Any]) -> tuple[str, dict] | None:
    """(new text, its data) with ENTRIES added at the end of the top-level mapping KEY of TEXT
    (whose data, read with `fast_load`, is DATA); None when that cannot be done by insertion."""
    if not entries or not isinstance(data, dict) or any(mark in text for mark in _OTHER_LINE_BREAKS):
        return None
    current = data.get(key)
    if not isinstance(current, dict) or not current or any(name in current for name in entries):
        return None
    position = _end_of_block(text, key)
    if position is None:
        return None
    snippet = dump_roundtrip({key: dict(entries)})
    head = f"{key}:\n"
    if not snippet.startswith(head) or not snippet.endswith("\n"):
        return None
    new_text = text[:position] + snippet[len(head):] + text[position:]
    try:
        new_data = fast_load(path, new_text)
    except UsageError:
        return None
    expected = {**data, key: {**current, **{name: _plain(entry) for name, entry in entries.items()}}}
    if not isinstance(new_data, dict) or new_data != expected or list(new_data) != list(data) \
            or list(new_data[key]) != [*current, *entries]:
        return None
    return new_text, new_data


def _end_of_block(text: str, key: str) -> int | None:
    """Where the block mapping under the top-level KEY of TEXT ends: the start of the next line
    that begins at column 0 with something other than a comment (or the end of TEXT), when KEY's
    line is `KEY:` alone and its first entry is indented by 2; None otherwise. Found by reading
    lines, not by parsing: whatever it finds is checked by parsing the result (see `appended`)."""
    head = f"{key}:"
    start = 0 if text.startswith(head) else text.find("\n" + head) + 1
    line_end = text.find("\n", start)
    if start == 0 and not text.startswith(head) or line_end < 0:
        return None
    rest = text[start + len(head):line_end]
    if rest and (rest[0] != " " or rest.strip() and not rest.strip().startswith("#")):
        return None  # `KEY: {...}`, `KEY: &anchor`, `KEY:x`
    first = _CONTENT.search(text, line_end + 1)
    if first is None or not (first.group(1) == "  " and first.group(2) not in "{[-"):
        return None  # not a block mapping indented by 2 (or empty)
    after = _TOP_LEVEL.search(text, first.end())
    if after is None:
        return len(text) if text.endswith("\n") else None
    return after.start()


_CONTENT = re.compile(r"^([ \t]*)([^ \t#\n])", re.MULTILINE)
"""A line's indentation and first character, on a line that is neither blank nor a comment."""
_TOP_LEVEL = re.compile(r"^[^ \t#\n]", re.MULTILINE)
"""A line that starts at column 0 with something other than a comment."""
