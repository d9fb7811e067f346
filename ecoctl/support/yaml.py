"""YAML for ecoctl's files, with one error path: a broken file is one `UsageError` naming file and line.

`parse_yaml` keeps comments and order (ruamel.yaml round-trip) for files a user may edit;
`dump_roundtrip` writes such a document back in ecoctl's style.
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


def parse_yaml(path: Path | str, text: str, loader=None) -> Any:
    """Load TEXT (read from PATH); broken YAML is one UsageError naming the file and line."""
    with yaml_errors(path):
        return (loader or roundtrip()).load(text)


def dump_roundtrip(document: Any) -> str:
    buffer = io.StringIO()
    roundtrip().dump(document, buffer)
    return buffer.getvalue()
