"""Output off a terminal without importing rich (~11 ms a command): exactly what `ecoctl.ui`'s rich
Console prints to a pipe or file, for the plain strings ecoctl prints; anything else (a table, a tab
to expand, a status spinner) goes to a real rich Console, made on first use.

Off a terminal, ecoctl's Console (soft_wrap, no emoji, no highlighting, no colors) prints a string
as its markup's text: tags dropped, `\\[` unescaped, rich's control codes (BEL, BS, VT, FF, CR)
removed, then a line end; it writes and flushes at once. `escape` is rich.markup's, copied so that
escaping does not import rich either. tests/unit/test_plain_console.py checks both against rich.
"""

from __future__ import annotations

import builtins
import os
import re
import sys
from typing import Any, Callable

_STRIP = {code: None for code in (7, 8, 11, 12, 13)}  # rich.control.STRIP_CONTROL_CODES
_TAGS = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")  # rich.markup.RE_TAGS
_ESCAPE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])").sub


def escape(markup: str) -> str:
    """Text that rich markup prints as it is (rich.markup.escape)."""
    def escape_backslashes(match: re.Match[str]) -> str:
        backslashes, text = match.groups()
        return f"{backslashes}{backslashes}\\{text}"

    markup = _ESCAPE(escape_backslashes, markup)
    if markup.endswith("\\") and not markup.endswith("\\\\"):
        return markup + "\\"
    return markup


def markup_text(markup: str) -> str:
    """The text rich.markup.render gives MARKUP, without its styles."""
    if "[" not in markup:
        return markup
    pieces, position = [], 0
    for match in _TAGS.finditer(markup):
        full_text, escapes, _tag = match.groups()
        start, end = match.span()
        if start > position:
            pieces.append(markup[position:start].replace("\\[", "["))
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            if backslashes:
                pieces.append("\\" * backslashes)
            if escaped:
                pieces.append(full_text[len(escapes):].replace("\\[", "["))
                position = end
                continue
        position = end  # a tag: a style only
    if position < len(markup):
        pieces.append(markup[position:].replace("\\[", "["))
    return "".join(pieces)


def is_terminal(stream) -> bool:
    """Whether rich's Console treats STREAM as a terminal (TTY_COMPATIBLE, FORCE_COLOR, isatty)."""
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "1"
    force_color = os.environ.get("FORCE_COLOR")
    if force_color is not None:
        return force_color != ""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def plain_possible(stream) -> bool:
    """True when rich would print to STREAM without colors or terminal controls."""
    return not is_terminal(stream) and not hasattr(builtins, "get_ipython")


class PlainConsole:
    """The part of rich's Console that ecoctl uses off a terminal; the rest is a real Console's."""

    is_terminal = False

    def __init__(self, stderr: bool, make_rich: Callable[[], Any]):
        self.stderr = stderr
        self._make_rich = make_rich
        self._rich = None

    @property
    def rich(self):
        if self._rich is None:
            self._rich = self._make_rich()
        return self._rich

    def print(self, *objects: Any, markup: bool | None = None, highlight: bool | None = None, **options) -> None:
        text = objects[0] if len(objects) == 1 and not options else None
        if type(text) is str:
            text = (text if markup is False else markup_text(text)).translate(_STRIP)
            if "\t" not in text:  # rich expands tabs by cell width: left to it
                self._write(text + "\n")
                return
        self.rich.print(*objects, markup=markup, highlight=highlight, **options)

    def _write(self, text: str) -> None:
        stream = sys.stderr if self.stderr else sys.stdout
        try:
            try:
                stream.write(text)
            except UnicodeEncodeError as error:
                error.reason = f"{error.reason}\n*** You may need to add PYTHONIOENCODING=utf-8 to your environment ***"
                raise
            stream.flush()
        except BrokenPipeError:  # as rich does: quiet from now on, exit 1
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise SystemExit(1) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rich, name)
