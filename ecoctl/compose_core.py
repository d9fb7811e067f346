"""The core components as compose services: the entries of compose.yaml, and their text.

`ecoctl init` writes compose.yaml from `text(ecosystem)` (stacks/core/compose.yaml.j2 places it);
the compose provider keeps the fields `settings(ecosystem)` names converged; the swarm runtime
reads the entries back from compose.yaml (which the user may extend). The text is written by
hand, not by a YAML dumper, so it reads like a file a person wrote: flow lists for commands and
healthchecks, block lists for ports and volumes, a note above the key it explains.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ecoctl import components
from ecoctl.components import Component
from ecoctl.contract import COMPOSE_NETWORK as NETWORK

if TYPE_CHECKING:
    from ecoctl.model import Ecosystem

WRAP = 80
"""A flow-style command longer than this is wrapped before an option (`--flag`)."""


def in_compose(ecosystem: "Ecosystem") -> list[Component]:
    """The components compose.yaml holds: every one with a container recipe, unless left out."""
    return [component for component in components.CATALOG
            if component.container is not None and not left_out(ecosystem, component)]


def left_out(ecosystem: "Ecosystem", component: Component) -> str:
    """Why compose.yaml does not hold COMPONENT in this ecosystem ("": it does)."""
    recipe = component.container
    return recipe.left_out(ecosystem) if recipe is not None and recipe.left_out else ""


def published(ecosystem: "Ecosystem", component: Component) -> list[str]:
    addresses = ["127.0.0.1"]
    if component.container.public and ecosystem.core.address:
        addresses.append(ecosystem.core.address)
    return [f"{address}:{port.host(ecosystem)}:{port.inside}" for port in component.ports for address in addresses]


def entry(ecosystem: "Ecosystem", component: Component) -> dict[str, Any]:
    """COMPONENT's compose entry, keys in the order they are written."""
    recipe = component.container
    assert recipe is not None
    fields: dict[str, Any] = {"image": ecosystem.image(recipe.image),
                              "container_name": f"{ecosystem.name}-{component.name}",
                              "init": True, "restart": "unless-stopped"}
    if recipe.profiles:
        fields["profiles"] = list(recipe.profiles)
    if recipe.entrypoint:
        fields["entrypoint"] = list(recipe.entrypoint)
    if recipe.command is not None:
        fields["command"] = recipe.command if isinstance(recipe.command, str) else list(recipe.command)
    environment = recipe.environment(ecosystem) if callable(recipe.environment) else recipe.environment
    if environment:
        fields["environment"] = dict(environment)
    if component.ports:
        fields["ports"] = published(ecosystem, component)
    volumes = list(recipe.mounts) + ([f"{component.data}:{recipe.data_path}"] if component.data else [])
    if volumes:
        fields["volumes"] = volumes
    fields["networks"] = [NETWORK]
    if recipe.depends_on:
        fields["depends_on"] = {name: {"condition": "service_healthy"} for name in recipe.depends_on}
    if recipe.healthcheck:
        fields["healthcheck"] = dict(recipe.healthcheck)
    return fields


def settings(ecosystem: "Ecosystem") -> dict[str, dict[str, Any]]:
    """What ecosystem.yaml decides about each core compose service that already exists: image,
    container name, published ports, and the fields its recipe keeps converged."""
    found = {}
    for component in components.CATALOG:
        if component.container is None:
            continue
        full = entry(ecosystem, component)
        wanted = {key: full[key] for key in ("image", "container_name", "ports") if key in full}
        wanted.update({key: full[key] for key in component.container.converged})
        found[component.name] = wanted
    return found


def shared_anchor(name: str) -> str:
    """The top-level key holding a shared environment (`x-authentik-environment`)."""
    return f"x-{name}"


# -- text ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ComposeText:
    """The pieces of compose.yaml that come from the catalog (the template places them)."""

    anchors: str
    services: str
    volumes: str


def text(ecosystem: "Ecosystem") -> ComposeText:
    anchors: dict[str, dict] = {}
    parts: list[str] = []
    left: list[Component] = []  # a run of components left out for one reason, noted where they would be

    def note_left_out() -> None:
        if left:
            *first, last = [component.name for component in left]
            names = f"{', '.join(first)} and {last}" if first else last
            verb = "are" if len(left) > 1 else "is"
            parts.append(f"  # {names} {verb} left out: {left_out(ecosystem, left[0])}.\n\n")
            left.clear()

    for component in components.CATALOG:
        if component.container is None:
            continue
        reason = left_out(ecosystem, component)
        if reason:
            if left and left_out(ecosystem, left[0]) != reason:
                note_left_out()
            left.append(component)
            continue
        note_left_out()
        if component.container.shared_environment:
            anchors.setdefault(component.container.shared_environment, dict(component.container.environment))
        parts.append(_entry_text(ecosystem, component))
    note_left_out()
    return ComposeText(
        anchors="".join(f"{shared_anchor(name)}: &{name}\n{_mapping(values, 2)}\n\n"
                        for name, values in anchors.items()),
        services="".join(parts),
        volumes="\n".join(f"  {component.data}:" for component in in_compose(ecosystem) if component.data))


def _entry_text(ecosystem: "Ecosystem", component: Component) -> str:
    recipe = component.container
    lines = [f"  {component.name}:"]
    for key, value in entry(ecosystem, component).items():
        notes = recipe.notes.get(key, "").splitlines()
        if key == "command" and isinstance(value, list) and _options_only(value):
            # a note on a list of options is about what the list holds (or lacks): after its items
            lines.append(_field(key, value, 4))
            lines += [f"      # {note}" for note in notes]
            continue
        lines += [f"    # {note}" for note in notes]
        if key == "environment" and recipe.shared_environment:
            lines.append(f"    environment: *{recipe.shared_environment}")
        elif key in ("command", "entrypoint") and isinstance(value, list):
            lines.append(_flow_command(value, key))
        else:
            lines.append(_field(key, value, 4))
    return "\n".join(lines) + "\n\n"


def _options_only(words: list[str]) -> bool:
    return all(word.startswith("--") for word in words)


def _flow_command(words: list[str], key: str = "command") -> str:
    """A command as one flow list, wrapped before an option when a line would grow past WRAP
    (a list of options only is a block list, see `_field`)."""
    prefix = f"    {key}: ["
    indent = " " * len(prefix)
    lines, line = [], prefix
    for index, word in enumerate(words):
        item = json.dumps(word) + ("," if index < len(words) - 1 else "]")
        fresh = line in (prefix, indent)
        if not fresh and word.startswith("--") and len(line) + 1 + len(item) > WRAP:
            lines.append(line)
            line, fresh = indent, True
        line += item if fresh else " " + item
    lines.append(line)
    return "\n".join(lines)


def _field(key: str, value: Any, indent: int) -> str:
    pad = " " * indent
    if isinstance(value, dict):
        return f"{pad}{key}:\n{_mapping(value, indent + 2)}"
    if isinstance(value, list) and key in ("test", "profiles"):
        return f"{pad}{key}: {json.dumps(value)}"
    if isinstance(value, list):
        quoted = key == "ports"
        return f"{pad}{key}:\n" + "\n".join(f"{pad}  - {json.dumps(item) if quoted else _scalar(item)}"
                                            for item in value)
    return f"{pad}{key}: {_scalar(value)}"


def _mapping(values: dict, indent: int) -> str:
    return "\n".join(_field(key, value, indent) for key, value in values.items())


def _scalar(value: Any) -> str:
    """VALUE as a YAML scalar: plain when YAML reads it back as this string, else quoted."""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    from ecoctl.errors import UsageError
    from ecoctl.support.yaml import fast_load

    try:
        if text and text == text.strip() and fast_load("value", f"key: {text}\n") == {"key": text}:
            return text
    except UsageError:
        pass
    return json.dumps(text)
