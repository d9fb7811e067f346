"""A template's `files/` tree, walked once per process and re-walked when it changes, and the cheap
rendering of path names that only hold `{{ variable }}` placeholders.

A plan renders the path names of every service's template: walking the tree and rendering each
name through Jinja2 for each service made that linear cost large (~3 ms a service). Here:

* `tree_files(root)`: the files below ROOT (relative POSIX paths, in the order sorting their
  `Path`s gives), from a cache checked with one `stat` per folder: a file added, removed or
  renamed changes its folder's mtime. File system timestamps are coarse (a kernel tick), so a
  folder changed less than `SETTLE_NS` before the walk is not trusted: the tree is walked again on
  each call until its folders have settled.
* `simple_render(text, context, filters)`: TEXT (a path name or a whole file) with each
  `{{ name }}` (or `{{ name | filter }}` with one of FILTERS, or `{{ mapping.key }}`) replaced by
  the context's text or integer, exactly what Jinja2 renders; None when TEXT holds anything else (other filters, blocks,
  comments, whitespace control, a `{` right before a placeholder, `\r`, a name not in the
  context, another kind of value), which Jinja2 then renders.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

SETTLE_NS = 2_000_000_000
"""How long before a walk a folder's mtime must lie for `stat` checks to stand in for walking it."""

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*"
                          r"(?:\|\s*([A-Za-z_][A-Za-z0-9_]*)\s*)?\}\}")
_JINJA_WORDS = frozenset({"true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is",
                          "if", "else", "elif", "for", "recursive", "with", "without", "import", "from",
                          "as", "set", "block", "extends", "include", "macro", "call", "filter", "raw"})
"""Names Jinja2 parses as constants or keywords, never as a variable: left to Jinja2."""


@dataclass(frozen=True)
class _Tree:
    folders: tuple[tuple[str, int, int], ...]
    """Each folder walked: (path, st_ino, st_mtime_ns)."""
    files: tuple[str, ...]
    settled: bool


_TREES: dict[tuple[str, frozenset[str], tuple[str, ...]], _Tree] = {}


def tree_files(root: Path, skipped: frozenset[str], skipped_suffixes: tuple[str, ...]) -> tuple[str, ...]:
    """The files below ROOT as `os.walk` finds them (names in SKIPPED left out, folders not entered,
    nor `*.egg-info` ones, which installing the tree in place leaves; files ending in SKIPPED_SUFFIXES
    left out), relative POSIX paths sorted as their `Path`s sort."""
    key = (str(root), skipped, skipped_suffixes)
    tree = _TREES.get(key)
    if tree is not None and tree.settled and _unchanged(tree.folders):
        return tree.files
    tree = _walk(str(root), skipped, skipped_suffixes)
    _TREES[key] = tree
    return tree.files


def _unchanged(folders: tuple[tuple[str, int, int], ...]) -> bool:
    for path, inode, mtime in folders:
        try:
            st = os.stat(path)
        except OSError:
            return False
        if st.st_ino != inode or st.st_mtime_ns != mtime:
            return False
    return True


def _walk(top: str, skipped: frozenset[str], skipped_suffixes: tuple[str, ...]) -> _Tree:
    started = time.time_ns()
    folders, files, settled = [], [], True
    for dirpath, dirnames, filenames in os.walk(top):
        # the stat after the listing: a change in between leaves an mtime too recent to settle
        try:
            st = os.stat(dirpath)
            folders.append((dirpath, st.st_ino, st.st_mtime_ns))
            settled = settled and st.st_mtime_ns < started - SETTLE_NS
        except OSError:
            settled = False
        dirnames[:] = [d for d in dirnames if d not in skipped and not d.endswith(".egg-info")]
        prefix = "" if dirpath == top else dirpath[len(top) + 1:].replace(os.sep, "/") + "/"
        files += [prefix + name for name in filenames
                  if name not in skipped and not name.endswith(skipped_suffixes)]
    if not folders:
        settled = False  # no such folder (yet): look again next time
    # Path objects sort by their parts; so do these (all share ROOT's parts)
    return _Tree(tuple(folders), tuple(sorted(files, key=lambda rel: rel.split("/"))), settled)


def simple_render(text: str, context: dict, filters: dict[str, Callable[[Any], Any]] | None = None) -> str | None:
    """TEXT with its `{{ name }}` (or `{{ name | filter }}`, FILTERS being the Environment's own,
    called as Jinja2 calls them) placeholders filled in from CONTEXT, as Jinja2 renders them; None
    when TEXT needs Jinja2 itself."""
    pieces = _pieces(text)
    if pieces is None:
        return None
    out = []
    for index in range(0, len(pieces) - 1, 3):
        literal, name, filter_name = pieces[index:index + 3]
        value = _lookup(context, name)
        if filter_name is not None:  # ecoctl's filters take text
            if type(value) is not str or filters is None or filter_name not in filters:
                return None
            value = filters[filter_name](value)
        elif type(value) not in (str, int):  # (an int prints as str() prints it, as in Jinja2)
            return None
        out += (literal, str(value))
    out.append(pieces[-1])
    return "".join(out)


def _lookup(context: dict, name: str) -> Any:
    """NAME (`images.python`: a key of a mapping) from CONTEXT as Jinja2 finds it; None when
    Jinja2 might find something else (a dict method of that name, a private name)."""
    first, *keys = name.split(".")
    value = context.get(first)
    for key in keys:
        if type(value) is not dict or key not in value or hasattr(dict, key) or key.startswith("_"):
            return None
        value = value[key]
    return value


@lru_cache(maxsize=4096)
def _pieces(text: str) -> tuple[str | None, ...] | None:
    """TEXT split into literal, name, filter (or None), literal, name, filter, ..., literal; None
    unless every placeholder is a plain `{{ name }}` or `{{ name | filter }}`."""
    if "\r" in text:
        return None  # Jinja2 normalizes line ends
    pieces = tuple(_PLACEHOLDER.split(text))
    literals = pieces[0::3]
    if any("{{" in literal or "{%" in literal or "{#" in literal for literal in literals):
        return None  # a block, a comment, or an expression of another shape
    if any(literal.endswith("{") for literal in literals[:-1]):
        return None  # `{` then `{{ name }}`: Jinja2 reads `{{{`
    if any(word in _JINJA_WORDS for name in pieces[1::3] for word in name.split(".")) \
            or any(word in _JINJA_WORDS for word in pieces[2::3]):
        return None
    return pieces
