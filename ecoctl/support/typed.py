"""Typed records from plain data (what a YAML file gives): dataclasses that check their fields'
types on construction, strictly, and say where a value is wrong.

The ecosystem model needs a handful of shapes: str, int and bool (never coerced: `"80"` and `true`
are not ports), `Literal[...]`, `X | None`, `list[X]`, `dict[str, X]`, nested records, and two
constraints given with `Annotated`: `Range(low, high)` and `Match(regex)`. A record may add its own
checks in `check()`, raising `Invalid` with the key path of what it refuses.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import types
import typing
from functools import cache
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

from ecoctl.errors import UsageError


class Invalid(ValueError):
    """A value that does not fit: `loc` is its path of keys, `problem` says what is wrong, `given`
    is the value (absent for a missing key)."""

    MISSING: ClassVar[object] = object()

    def __init__(self, loc: tuple, problem: str, given: Any = MISSING):
        super().__init__(problem)
        self.loc, self.problem, self.given = tuple(loc), problem, given

    def under(self, *keys: Any) -> "Invalid":
        return Invalid((*keys, *self.loc), self.problem, self.given)


@dataclasses.dataclass(frozen=True)
class Range:
    low: int
    high: int


@dataclasses.dataclass(frozen=True)
class Match:
    pattern: str


class Record:
    """Base of a checked dataclass: construction converts nested mappings to records and refuses a
    value of the wrong type; `from_data` also refuses unknown and missing keys."""

    def __post_init__(self) -> None:
        for name, hint in _hints(type(self)).items():
            object.__setattr__(self, name, _value(getattr(self, name), hint, (name,)))
        self.check()

    def check(self) -> None:
        """Checks across fields, or beyond a field's type; raise Invalid naming the field."""

    @classmethod
    def from_data(cls, data: Any, loc: tuple = ()):
        if not isinstance(data, dict):
            raise Invalid(loc, "expected a mapping", data)
        known = _hints(cls)
        for key in data:
            if key not in known:
                raise Invalid((*loc, key), "unknown key")
        for field in dataclasses.fields(cls):
            if field.name not in data and field.default is dataclasses.MISSING \
                    and field.default_factory is dataclasses.MISSING:
                raise Invalid((*loc, field.name), "missing key")
        try:
            return cls(**data)
        except Invalid as exc:
            raise exc.under(*loc) from None

    def as_dict(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


@cache
def _hints(cls: type) -> dict[str, Any]:
    names = {field.name for field in dataclasses.fields(cls)}
    module = sys.modules[cls.__module__].__dict__
    return {name: hint for name, hint in typing.get_type_hints(cls, module, include_extras=True).items()
            if name in names}


def _value(value: Any, hint: Any, loc: tuple) -> Any:
    """`value` checked against `hint` (nested mappings become records); Invalid at `loc` if it does not fit."""
    origin = get_origin(hint)
    if origin is typing.Annotated:
        base, *constraints = get_args(hint)
        ranges = [f" from {c.low} to {c.high}" for c in constraints if isinstance(c, Range)]
        try:
            value = _value(value, base, loc)
        except Invalid as exc:
            raise Invalid(exc.loc, exc.problem + "".join(ranges), exc.given) from None
        for constraint in constraints:
            if isinstance(constraint, Range) and not constraint.low <= value <= constraint.high:
                raise Invalid(loc, f"expected an integer from {constraint.low} to {constraint.high}", value)
            if isinstance(constraint, Match) and not re.fullmatch(constraint.pattern, value):
                raise Invalid(loc, f"expected text matching {constraint.pattern}", value)
        return value
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [option for option in options if option is not type(None)]
        return _value(value, inner, loc)
    if origin is Literal:
        choices = get_args(hint)
        if isinstance(value, bool) or value not in choices:
            raise Invalid(loc, f"expected one of {', '.join(map(str, choices))}", value)
        return choices[choices.index(value)]
    if origin is list:
        (item,) = get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise Invalid(loc, "expected a list", value)
        return [_value(entry, item, (*loc, index)) for index, entry in enumerate(value)]
    if origin is dict:
        key_type, item = get_args(hint)
        if not isinstance(value, dict):
            raise Invalid(loc, "expected a mapping", value)
        for key in value:
            if not isinstance(key, key_type):
                raise Invalid((*loc, key), f"expected a key of {_KINDS[key_type]}", key)
        return {key_type(key): _value(entry, item, (*loc, key)) for key, entry in value.items()}
    if isinstance(hint, type) and issubclass(hint, Record):
        return value if isinstance(value, hint) else hint.from_data(value, loc)
    if hint is Any:
        return value
    if hint in _SCALARS:
        if not _SCALARS[hint](value):
            raise Invalid(loc, f"expected {_KINDS[hint]}", value)
        return hint(value)  # a round-trip YAML scalar (ScalarInt, a quoted string) as the plain value
    raise TypeError(f"no check for {hint!r} (at {'.'.join(map(str, loc))})")


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "ScalarBoolean"  # ruamel's anchored bool is an int


_SCALARS = {str: lambda value: isinstance(value, str),
            int: lambda value: isinstance(value, int) and not _is_bool(value),
            bool: _is_bool}
_KINDS = {str: "text", int: "an integer", bool: "true or false"}


def checked(check, value, *loc):
    """`check(value)`, its ValueError (or UsageError) as Invalid at `loc`."""
    try:
        return check(value)
    except (ValueError, UsageError) as exc:
        raise Invalid(loc, str(exc)) from None
