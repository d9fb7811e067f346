"""Add new entries to a top-level block mapping of a YAML file by inserting their text, so a new
service does not cost a round-trip parse and dump of the whole file (compose.yaml: ~45 ms).

The entries are dumped with ecoctl's round-trip style (`support.yaml.roundtrip`) at the indentation
the round-trip dump of the whole document would give them, and inserted where that mapping ends;
every other byte of the file stays as it was. Only for the plain case (block style, 2-space
indentation, `\\n` line ends, keys not present yet); the result is read back and must hold exactly
the old data plus the new entries, else None is returned and the caller edits round-trip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecoctl.errors import UsageError
from ecoctl.support.yaml import dump_roundtrip, fast_compose, fast_load

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
    try:
        root = fast_compose(path, text)
    except UsageError:
        return None
    node = next((value for name, value in getattr(root, "value", ())
                 if getattr(name, "value", None) == key and name.start_mark.column == 0), None)
    if type(node).__name__ != "MappingNode" or node.flow_style or not node.value \
            or node.value[0][0].start_mark.column != 2 or node.end_mark.column != 0:
        return None
    lines = text.split("\n")
    end = node.end_mark.line
    if end > len(lines) - 1 or (end < len(lines) - 1 and lines[end][:1] in ("", " ", "\t", "#")):
        return None  # not where a top-level key (or the end of the file) starts
    snippet = dump_roundtrip({key: dict(entries)})
    head = f"{key}:\n"
    if not snippet.startswith(head) or not snippet.endswith("\n"):
        return None
    position = sum(len(line) + 1 for line in lines[:end])
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
