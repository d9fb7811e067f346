"""Check a dashboard's JSON against Grafana's own schema, as published in Python by Grafana
(`grafana-foundation-sdk`: typed models generated from Grafana's CUE schema; no Grafana runs here).

Three checks, each naming the path of what it rejects:
- parse: the SDK's models read the JSON (an unknown enum value, a wrong shape raise here);
- types: every field the models read has the type the schema gives it (`gridPos.w: "12"` is caught);
- nothing dropped: writing the models back yields every key and value of the input, so a key the
  schema does not know (a typo such as `gridpos`, an option the panel type does not have) is caught.
"""

from __future__ import annotations

import enum
import json
import types
import typing

SDK = "grafana_foundation_sdk"


def schema_problems(board: dict) -> list[str]:
    """Why `board` is not a dashboard by Grafana's schema; [] when it is one."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()  # panel options and prometheus queries are read by their own models
    try:
        model = Dashboard.from_json(board)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        return [f"does not parse: {type(exc).__name__}: {exc}"]
    problems = _type_problems(model, "dashboard")
    written = json.loads(json.dumps(model, cls=JSONEncoder))
    problems += _dropped(board, written, "dashboard")
    return problems


def _dropped(given: object, written: object, path: str) -> list[str]:
    """Keys and values of `given` that the schema's models did not keep (defaults they add are fine)."""
    if isinstance(given, dict):
        if not isinstance(written, dict):
            return [f"{path}: an object became {written!r}"]
        problems = []
        for key, value in given.items():
            if key not in written:
                problems.append(f"{path}.{key}: not in the schema")
            else:
                problems += _dropped(value, written[key], f"{path}.{key}")
        return problems
    if isinstance(given, list):
        if not isinstance(written, list) or len(written) != len(given):
            return [f"{path}: a list of {len(given)} became {written!r}"]
        return [problem for index, (item, back) in enumerate(zip(given, written))
                for problem in _dropped(item, back, f"{path}[{index}]")]
    if given != written or type(given) is bool and type(written) is not bool:
        return [f"{path}: {given!r} was written back as {written!r}"]
    return []


def _type_problems(model: object, path: str) -> list[str]:
    hints = typing.get_type_hints(type(model))
    problems = []
    for name, value in vars(model).items():
        if name in hints and value is not None:
            problems += _check(value, hints[name], f"{path}.{name}")
    return problems


def _check(value: object, hint: object, path: str) -> list[str]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any or hint is object:
        return _walk(value, path)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        if value is None and len(options) < len(args):
            return []
        if len(options) == 1:
            return _check(value, options[0], path)
        if len(options) > 1 and all(isinstance(o, type) and o.__module__.startswith(SDK) for o in options):
            matching = [o for o in options if isinstance(value, o)]  # a union of models: by its class
            return _check(value, matching[0], path) if matching else [
                f"{path}: {value!r} is none of {_names(options)}"]
        for option in options:
            if not _check(value, option, path):
                return []
        return [f"{path}: {value!r} is none of {_names(options)}"]
    if origin is typing.Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {list(args)}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not a list"]
        return [p for index, item in enumerate(value) for p in _check(item, args[0], f"{path}[{index}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not an object"]
        return [p for key, item in value.items() for p in _check(item, args[1], f"{path}.{key}")]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            hint(value)
        except ValueError:
            return [f"{path}: {value!r} is not one of {[member.value for member in hint]}"]
        return []
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not a number"]
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r} is not an integer"]
    if hint is str:
        return [] if isinstance(value, str) else [f"{path}: {value!r} is not a string"]
    if hint is bool:
        return [] if type(value) is bool else [f"{path}: {value!r} is not a boolean"]
    if isinstance(hint, type):
        if not isinstance(value, hint):
            return [f"{path}: {value!r} is not a {hint.__name__}"]
        return _walk(value, path)
    return []


def _walk(value: object, path: str) -> list[str]:
    """Into the SDK's models inside an untyped field (a panel's options read by its panel's model)."""
    if type(value).__module__.startswith(SDK) and hasattr(value, "__dict__"):
        return _type_problems(value, path)
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _walk(item, f"{path}[{index}]")]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _walk(item, f"{path}.{key}")]
    return []


def _names(options: list) -> str:
    return ", ".join(getattr(option, "__name__", str(option)) for option in options)
