"""Typer builds each parameter's value coercion (a pydantic TypeAdapter, since Typer 0.2x) the first
time the parameter is processed, even when it has no value. `ecoctl init --help` processes the
group's `--dir` (None) before the subcommand's eager `--help`, so pydantic was imported to print
help. `LazyCoercionGroup` defers that build until a parameter actually receives a value; a value
of None is what the coercion itself would return for it (None, or () for a multi-value one).

When a value arrives and is already what the annotation asks for (text for `str`, a flag's
True/False for `bool`, texts for `list[str]`, ASCII digits within min/max for `int`, a float
within min/max for `float`: `up --timeout`'s default), it is passed as it is, which is what Typer's
adapter returns for it; anything else (a bad value, a Path, a float's text) goes to Typer's own
coercion and its error messages, except text for an `int` that is not ASCII digits (after an optional minus): Typer's adapter reads "8080.0", " 80", "+80" and "8_0" as numbers. So a command line of plain values does not
import pydantic at all.

Guarded: with a Typer that has no such hook, parameters are left as they are.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup


class _DeferredCoercion:
    """Stands in for Typer's RuntimeParam until a value arrives, then builds and caches the real one."""

    def __init__(self, param: Any):
        self.param = param

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:
            return () if (param.multiple or param.nargs == -1) else None
        plain = _plain_value(param.type_descriptor, value)
        if plain is not _NOT_PLAIN:
            return plain
        digits = value[1:] if type(value) is str and value.startswith("-") else value
        if param.type_descriptor.annotation is int and type(value) is str \
                and not (digits.isascii() and digits.isdigit()):
            from typer import BadParameter  # Typer's own coercion reads "8080.0", " 80", "+80", "8_0" as numbers

            raise BadParameter(f"{value[:40]!r} is not an integer: write it with digits only")
        from typer._coercion import build_runtime_param

        real = build_runtime_param(param.type_descriptor)
        param._runtime_param = real
        return real.coerce(value, param=param, ctx=ctx)


_NOT_PLAIN = object()


def _plain_value(descriptor: Any, value: Any) -> Any:
    """`value` as Typer's coercion would return it, when that is certain without it; else _NOT_PLAIN."""
    info = descriptor.parameter_info
    if info.parser is not None or getattr(info, "clamp", False):
        return _NOT_PLAIN
    annotation = descriptor.annotation
    if annotation is str and type(value) is str:
        return value
    if annotation is bool and type(value) is bool:
        return value
    if annotation == list[str] and isinstance(value, (list, tuple)) and all(type(item) is str for item in value):
        return list(value)
    if annotation is int and type(value) is str and value.isascii() and value.isdigit() and len(value) < 10:
        number = int(value)
        if (info.min is None or number >= info.min) and (info.max is None or number <= info.max):
            return number
    if annotation is float and type(value) is float:  # a float option's default (`up --timeout`)
        if (info.min is None or value >= info.min) and (info.max is None or value <= info.max):
            return value
    return _NOT_PLAIN


def defer_coercion(params) -> None:
    for param in params:
        if getattr(param, "_runtime_param", 0) is None and hasattr(param, "type_descriptor"):
            param._runtime_param = _DeferredCoercion(param)


def _defer_tree(command, ctx) -> None:
    """Every parameter of `command` and its subcommands, their `--help` options included (created
    and cached by `get_params`; a help flag that was not given is processed as None, not False)."""
    defer_coercion(command.get_params(ctx))
    for sub in getattr(command, "commands", {}).values():
        _defer_tree(sub, ctx)


class LazyCoercionGroup(TyperGroup):
    """The top-level group: before parsing, every parameter of every command defers its coercion."""

    def parse_args(self, ctx, args):
        _defer_tree(self, ctx)
        return super().parse_args(ctx, args)
