"""One template text rendered: a service file, a path name, a variable's default, an argument of
`run:`. Plain `{{ name }}` placeholders are filled in without Jinja2 (`support.template_tree`);
anything else goes to ecoctl's sandboxed Jinja2 environment (imported only then), whose errors
become one line naming the template file and line.
"""

from __future__ import annotations

import keyword
import sys
from functools import lru_cache
from typing import Any

from ecoctl.errors import UsageError
from ecoctl.support.template_tree import simple_render

_TAKEN_PACKAGES = frozenset({"tests", "test", "fastapi", "starlette", "uvicorn", "pydantic", "psycopg",
                             "psycopg_pool", "jwt", "prometheus_client", "httpx", "pytest", "cryptography"})
"""Packages a rendered service imports (or `tests`, its own test folder), which its package must not shadow."""


def python_package(name: str) -> str:
    """A Python package name for a service name; `_service` appended when Python already has it."""
    package = name.replace("-", "_")
    if keyword.iskeyword(package) or keyword.issoftkeyword(package) or package in sys.stdlib_module_names \
            or package in sys.builtin_module_names or package in _TAKEN_PACKAGES:
        package += "_service"
    return package


FILTERS = {"python_package": python_package}
"""ecoctl's own Jinja2 filters."""


def render_text(text: str, context: dict[str, Any], where: str) -> str:
    """TEXT (a path, a variable's default, an argument of `run:`) rendered; text without `{{` or
    `{%` is returned as it is."""
    if "{{" not in text and "{%" not in text:
        return text
    return render_file(text, context, where)


def render_file(text: str, context: dict[str, Any], where: str) -> str:
    """TEXT (a whole `.j2` file) rendered: plain placeholders without Jinja2 (both shipped templates
    render without it), the rest with ecoctl's environment; an error is one UsageError at WHERE."""
    plain = simple_render(text, context, FILTERS)
    if plain is not None:
        return plain
    from jinja2 import TemplateError

    try:
        if text not in _COMPILED:  # compiled once a process: a plan may render it for hundreds of services
            _COMPILED[text] = environment().from_string(text)
        return _COMPILED[text].render(context)
    except TemplateError as exc:
        raise UsageError(f"template {where}: {_one_line(exc)}") from None


_COMPILED: dict[str, Any] = {}


@lru_cache(maxsize=1)
def environment():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    # sandboxed: a template (maybe from a git repository) renders text, it never runs code
    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters.update(FILTERS)
    return env


def _one_line(exc: Exception) -> str:
    message = " ".join(str(exc).split()) or type(exc).__name__
    if type(exc).__name__ == "UndefinedError":
        message += " (pass it as a variable, or give it a default in template.yaml)"
    line = getattr(exc, "lineno", None) or _template_line(exc)
    return f"line {line}: {message}" if line else message


def _template_line(exc: Exception) -> int | None:
    """The template line a render-time error came from (Jinja2 maps its frames to `<template>`)."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
