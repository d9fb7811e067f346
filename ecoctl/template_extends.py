"""What a template.yaml says beyond one template: `extends:` (a template made of another, whose
files are rendered first: the portfolio web app is react-vite plus its screens) and a web app's
OAuth2 client (`client: public`, and the `calls` add-service records when given no --calls)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ecoctl.errors import UsageError

At = Callable[[str], str]
"""`path:line` of a key of the manifest being read (for messages)."""


def client_of(at: At, raw: Any) -> str:
    if raw not in ("confidential", "public"):
        raise UsageError(f"{at('client')}: `client` must be confidential (a service) or public (a web app)")
    return raw


def calls_of(at: At, raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise UsageError(f"{at('calls')}: `calls` must be a list of service names")
    return tuple(raw)


def base_of(at: At, path: Path, raw: Any, load: Callable[[Path], Any]):
    """The template `extends` names (LOAD reads a template folder), at the version it names (its
    folder or its versions/<N>/); None without `extends`."""
    if raw is None:
        return None
    if not (isinstance(raw, dict) and set(raw) == {"template", "version"} and isinstance(raw["template"], str)
            and isinstance(raw["version"], int) and not isinstance(raw["version"], bool)):
        raise UsageError(f"{at('extends')}: `extends` must be {{template: NAME, version: N}}")
    # beside this template, or, for one of its versions/<N>/, beside the template itself
    for folder in (path.parent / raw["template"], path.parent.parent.parent / raw["template"]):
        if (folder / "template.yaml").is_file() and folder.resolve() != path:
            base = load(folder)
            if base.version != raw["version"]:
                kept = folder / "versions" / str(raw["version"])
                if not (kept / "template.yaml").is_file():
                    break
                base = load(kept)
            return base
    raise UsageError(f"{at('extends')}: template {raw['template']!r} version {raw['version']} is not "
                     f"beside {path.name}: put it there, or fix `extends`")
