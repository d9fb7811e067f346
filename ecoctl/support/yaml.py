"""YAML for ecoctl's files, with one error path: a broken file is one `UsageError` naming file and line.

`parse_yaml` keeps comments and order (ruamel.yaml round-trip) for files a user may edit;
`dump_roundtrip` writes such a document back in ecoctl's style. `fast_load` / `fast_compose` are
for reading only (a plan): ruamel's safe loader on the C parser (ruamel.yaml.clib), about 40x
faster than the round-trip parser, with the same values.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ecoctl.errors import UsageError


def roundtrip():
    """A ruamel.yaml round-trip loader/dumper configured like ecoctl's own files."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


@contextmanager
def yaml_errors(path: Path | str, hint: str = ""):
    """Inside, any YAML error becomes one UsageError naming PATH and the line."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    suffix = f": {hint}" if hint else ""
    try:
        yield
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}" if mark else ""
        raise UsageError(f"{path}{where}: invalid YAML: {exc.problem or exc.context}{suffix}") from None
    except YAMLError as exc:
        raise UsageError(f"{path}: invalid YAML: {' '.join(str(exc).split())}{suffix}") from None


MAX_YAML_BYTES = 8 << 20
"""Largest YAML file parsed (8 MiB): compose.yaml grows by ~1.3 KB a service (1.3 MB at 1000).
The files a user hands ecoctl are capped lower when read (`atomic.MAX_BYTES`: ecosystem.yaml, .env)."""
MAX_NODES = 20_000
"""Nodes a small document may hold with every alias expanded: a real ecosystem.yaml has a few
hundred; a 1.5 KB file of nested aliases (`a9: [*a8, *a8, ...]`) expands to billions."""


MAX_DEPTH = 200
"""Deepest nesting of collections accepted: a real file nests a dozen levels; the C composer
recurses once a level, without Python's recursion check, so 30,000 levels crash the process."""


def _check_depth(path: Path | str, text: str) -> None:
    """A UsageError when TEXT nests collections deeper than MAX_DEPTH, found by walking its parse
    events (which no parser builds recursively) before any composer sees it. A file with fewer
    collection indicators (`[`, `{`, `-`, `?`, `:`) than MAX_DEPTH cannot be that deep: not walked."""
    if sum(text.count(mark) for mark in "[{-?:") <= MAX_DEPTH:
        return
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent

    try:
        from ruamel.yaml.cyaml import CSafeLoader

        parser = CSafeLoader(text)
    except ImportError:
        from ruamel.yaml import YAML

        parser = None
        events = YAML(typ="safe", pure=True).parse(text)
    depth = 0
    try:
        while True:
            event = parser.get_event() if parser is not None else next(events, None)
            if event is None or event.__class__.__name__ == "StreamEndEvent":
                return
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = f":{event.start_mark.line + 1}" if event.start_mark else ""
                    raise UsageError(f"{path}{line}: refused: collections nested more than {MAX_DEPTH} "
                                     "levels deep (write it flatter)")
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except YAMLError:
        return  # the parser that loads it stops at the same place, with its own message
    finally:
        if parser is not None:
            parser.dispose()


def node_limit(text: str) -> int:
    """Nodes TEXT may expand to: MAX_NODES, or as many as a file of its size could hold written out
    (a node takes a character at least), so aliases never make a document larger than that."""
    return max(MAX_NODES, len(text))


class _TooBig(Exception):
    pass


def expanded_size(document: Any, limit: int = MAX_NODES) -> int:
    """How many nodes DOCUMENT holds once every alias is expanded, counting each shared node once
    per reference but visiting it once (so this is fast on an alias bomb); raises `_TooBig` past
    LIMIT, on a recursive alias, or on a text holding a lone surrogate."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            if isinstance(node, str) and not node.isascii():
                try:
                    node.encode("utf-8")
                except UnicodeEncodeError:  # a `\ud800` escape: no text any file or system takes
                    raise _TooBig("a lone surrogate escape (\\ud800-\\udfff), which is not text: remove it") from None
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise _TooBig("a recursive alias (nested aliases?): write the values out")
        active.add(key)
        total = 1
        for child in (item for pair in node.items() for item in pair) if isinstance(node, dict) else node:
            total += size(child)
            if total > limit:
                raise _TooBig(f"more than {limit} values once its aliases are expanded (nested aliases?): "
                              "write the values out")
        active.discard(key)
        sizes[key] = total
        return total

    return size(document)


def parse_yaml(path: Path | str, text: str, loader=None) -> Any:
    """Load TEXT (read from PATH); broken YAML is one UsageError naming the file and line, and so is a
    document whose aliases expand past `node_limit` (checked before anything walks it)."""
    _check_size(path, text)
    with yaml_errors(path):
        try:
            document = (loader or roundtrip()).load(text)
        except RecursionError:
            raise UsageError(f"{path}: invalid YAML: nested too deeply") from None
    return _bounded(path, document, node_limit(text))


def _check_size(path: Path | str, text: str) -> None:
    """Refuse TEXT before a parser sees it: larger than MAX_YAML_BYTES, or deeper than MAX_DEPTH."""
    if len(text) > MAX_YAML_BYTES:
        raise UsageError(f"{path}: larger than {MAX_YAML_BYTES // 1024} KiB: check the path")
    _check_depth(path, text)


def _bounded(path: Path | str, document: Any, limit: int) -> Any:
    """DOCUMENT, once its aliases are known not to expand past LIMIT nodes."""
    try:
        expanded_size(document, limit)
    except _TooBig as exc:
        raise UsageError(f"{path}: refused: {exc}") from None
    except RecursionError:
        raise UsageError(f"{path}: invalid YAML: nested too deeply") from None
    return document


def _with_c_parser(text: str, method: str) -> tuple[bool, Any]:
    """(True, result) of ruamel's CSafeLoader over TEXT; (False, None) when no C parser is
    installed or libyaml refuses the text (it is stricter than YAML 1.2 in places, e.g. a plain
    `host:port` inside `[...]`): the caller then uses the pure-Python parser, which decides."""
    import warnings

    try:
        from ruamel.yaml.cyaml import CSafeLoader
        from ruamel.yaml.error import YAMLError
    except ImportError:
        return False, None
    loader = CSafeLoader(text)
    try:
        with warnings.catch_warnings():  # ruamel's notes on YAML 1.1 float spellings
            warnings.simplefilter("ignore")
            return True, getattr(loader, method)()
    except YAMLError:
        return False, None
    finally:
        loader.dispose()


def c_safe_load(path: Path | str, text: str) -> tuple[bool, Any]:
    """(True, TEXT as plain data) with the C parser, as `fast_load` reads it; (False, None) when
    there is none or it refuses TEXT (then the caller's own pure loader decides, with its messages).
    A text over MAX_YAML_BYTES or deeper than MAX_DEPTH is a UsageError naming PATH."""
    _check_size(path, text)
    return _with_c_parser(text, "get_single_data")


def fast_load(path: Path | str, text: str) -> Any:
    """TEXT as plain data (dicts, lists, scalars: YAML 1.2 like the round-trip loader); for reading
    only, never to write back. Broken YAML, a file over MAX_YAML_BYTES or one whose aliases expand past
    `node_limit` is one UsageError naming the file (and the line)."""
    _check_size(path, text)
    done, data = _with_c_parser(text, "get_single_data")
    if not done:
        from ruamel.yaml import YAML

        with yaml_errors(path):
            try:
                data = YAML(typ="safe", pure=True).load(text)
            except RecursionError:
                raise UsageError(f"{path}: invalid YAML: nested too deeply") from None
    return _bounded(path, data, node_limit(text))


def fast_compose(path: Path | str, text: str) -> Any:
    """TEXT's node tree (ruamel.yaml.nodes, with line/column/index marks), for reading only. Only
    for a TEXT that `fast_load` accepted: its size and depth are not checked again here."""
    done, node = _with_c_parser(text, "get_single_node")
    if done:
        return node
    from ruamel.yaml import YAML

    with yaml_errors(path):
        return YAML().compose(text)


def dump_roundtrip(document: Any) -> str:
    buffer = io.StringIO()
    roundtrip().dump(document, buffer)
    return buffer.getvalue()


def line_of(document: Any, loc: tuple) -> int | None:
    """1-based line of the deepest key in `loc` that the round-trip document knows."""
    node, line = document, None
    for key in loc:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None and isinstance(key, str) and key in node:
                line = lc.key(key)[0] + 1
            elif lc is not None and isinstance(key, int):
                line = lc.item(key)[0] + 1
            node = node[key]
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return line
