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


MAX_OUTPUT = 4 << 20
"""Largest text one template text renders to, and largest value (text, list) it may build on the way."""
RENDER_SECONDS = 10.0
"""Longest one template text may take to render (nested loops over large ranges)."""


class _TooMuch(Exception):
    """A render that went past MAX_OUTPUT or RENDER_SECONDS: the message says which."""


def render_file(text: str, context: dict[str, Any], where: str) -> str:
    """TEXT (a whole `.j2` file) rendered: plain placeholders without Jinja2 (both shipped templates
    render without it), the rest with ecoctl's environment, bounded in time and size; an error is
    one UsageError at WHERE."""
    plain = simple_render(text, context, FILTERS)
    if plain is not None:
        return plain
    from jinja2 import TemplateError

    try:
        if text not in _COMPILED:  # compiled once a process: a plan may render it for hundreds of services
            _COMPILED[text] = environment().from_string(text)
        return _within_time(lambda: _bounded_render(_COMPILED[text], context))
    except TemplateError as exc:
        raise UsageError(f"template {where}: {_one_line(exc)}") from None
    except (_TooMuch, RecursionError, MemoryError) as exc:
        problem = str(exc) if isinstance(exc, _TooMuch) else "it nests or recurses too deeply, or needs too much memory"
        raise UsageError(f"template {where}: refused: {problem}{_line_of(exc)}: simplify the template") from None


def _line_of(exc: BaseException) -> str:
    line = _template_line(exc)
    return f" (line {line})" if line else ""


def _bounded_render(template, context: dict[str, Any]) -> str:
    chunks, size = [], 0
    for chunk in template.generate(context):
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise _TooMuch(f"it renders more than {MAX_OUTPUT >> 20} MiB")
        chunks.append(chunk)
    return "".join(chunks)


def _within_time(render):
    """RENDER() in this thread, interrupted with _TooMuch past RENDER_SECONDS: a watchdog raises it
    in this thread (CPython's asynchronous exception, checked between bytecodes, which is where a
    template's loops run). A late alarm is withdrawn under the lock before it can escape."""
    import ctypes
    import threading

    thread, lock, state = ctypes.c_ulong(threading.get_ident()), threading.Lock(), {"active": True, "fired": False}

    def alarm() -> None:
        with lock:
            if state["active"]:
                state["fired"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(thread, ctypes.py_object(_Timeout))

    timer = threading.Timer(RENDER_SECONDS, alarm)
    timer.daemon = True
    timer.start()
    try:
        return render()
    except _Timeout:
        raise _TooMuch(f"it takes longer than {RENDER_SECONDS:.0f} s to render") from None
    finally:
        with lock:
            state["active"] = False
            if state["fired"]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(thread, None)  # not raised yet: withdrawn
        timer.cancel()


class _Timeout(Exception):
    pass


_COMPILED: dict[str, Any] = {}


def _weight(value: Any) -> int:
    """About how many characters VALUE prints to (a container: its items', each counted once)."""
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, (list, tuple)):
        return len(value) + sum(len(item) for item in value if isinstance(item, (str, bytes)))
    return 1


def _checked(value: Any) -> Any:
    if _weight(value) > MAX_OUTPUT:
        raise _TooMuch(f"it builds a value of more than {MAX_OUTPUT >> 20} MiB")
    return value


def _wide_format(text: Any, args: tuple | list = ()) -> bool:
    """Whether format string TEXT (`%` or `str.format`) asks for a width or precision beyond
    MAX_OUTPUT, written in it or (`%*s`, `{:{w}}`) taken from ARGS."""
    import re

    if not isinstance(text, str):
        return False
    if re.search(r"%[-+ #0]*\d{8}|%[-+ #0]*\d*\.\d{8}|\{[^{}]*:[^{}]*\d{8}", text):
        return True
    starred = "*" in text or re.search(r"\{[^{}]*:[^{}]*\{", text)
    return bool(starred) and any(isinstance(arg, int) and abs(arg) > MAX_OUTPUT for arg in args)


def _before_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        count, seq = (right, left) if isinstance(right, int) else (left, right)
        if isinstance(count, int) and isinstance(seq, (str, bytes, list, tuple)):
            _checked_size(max(count, 0) * _weight(seq))
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
        _checked_size(right * abs(left).bit_length() // 4)
    elif operator == "%" and isinstance(left, str):
        values = right if isinstance(right, tuple) else (right,)
        if _wide_format(left, values):
            raise _TooMuch(f"it formats a value wider than {MAX_OUTPUT >> 20} MiB")
    elif operator == "+":
        _checked_size(_weight(left) + _weight(right))


def _checked_size(size: int) -> None:
    if size > MAX_OUTPUT:
        raise _TooMuch(f"it builds a value of more than {MAX_OUTPUT >> 20} MiB")


_AMPLIFIERS = {"replace": "replace", "do_replace": "replace", "join": "join", "do_join": "join",
               "sync_do_join": "join", "do_indent": "indent", "expandtabs": "expandtabs",
               "center": "width", "ljust": "width", "rjust": "width", "zfill": "width", "do_center": "width",
               "do_format": "format"}
"""Functions (str methods, Jinja2 filters) whose result may be much larger than their arguments."""


def _before_call(function: Any, args: tuple, kwargs: dict) -> None:
    """Refuse a call of a str method or a filter whose result would pass MAX_OUTPUT, before it is made."""
    owner = getattr(function, "__self__", None)
    kind = _AMPLIFIERS.get(getattr(function, "__name__", ""))
    if kind is None or (owner is not None and not isinstance(owner, str)):
        return
    args = (owner, *args) if owner is not None else tuple(a for a in args if not hasattr(a, "environment"))
    text = args[0] if args else ""
    if kind == "replace" and len(args) >= 3 and all(isinstance(arg, str) for arg in args[:3]):
        old, new = args[1], args[2]
        hits = len(text) + 1 if not old else text.count(old)
        _checked_size(len(text) + hits * max(len(new) - len(old), 0))
    elif kind == "join":
        items = args[1] if owner is not None and len(args) > 1 else text
        separator = owner if owner is not None else (args[1] if len(args) > 1 else kwargs.get("d", ""))
        if isinstance(items, (list, tuple)):
            _checked_size(_weight(items) + len(items) * len(separator if isinstance(separator, str) else ""))
    elif kind in ("indent", "expandtabs") and isinstance(text, str):
        width = args[1] if len(args) > 1 else kwargs.get("width", kwargs.get("tabsize", 8))
        width = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        _checked_size(len(text) + width * (text.count("\n" if kind == "indent" else "\t") + 1))
    elif kind == "width" and any(isinstance(arg, int) and arg > MAX_OUTPUT for arg in (*args[1:], *kwargs.values())):
        raise _TooMuch(f"it asks for a value wider than {MAX_OUTPUT >> 20} MiB")
    elif kind == "format" and _wide_format(text, (*args[1:], *kwargs.values())):
        raise _TooMuch(f"it formats a value wider than {MAX_OUTPUT >> 20} MiB")


@lru_cache(maxsize=1)
def environment():
    import functools

    from jinja2 import StrictUndefined
    from jinja2.compiler import CodeGenerator
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from jinja2.utils import Namespace

    class BoundedCode(CodeGenerator):
        def visit_Concat(self, node, frame):  # `a ~ b`: checked once built (its parts are)
            self.write("environment.checked(")
            super().visit_Concat(node, frame)
            self.write(")")

    class BoundedNamespace(Namespace):
        def __setitem__(self, name, value):
            super().__setitem__(name, _checked(value))

    class Bounded(ImmutableSandboxedEnvironment):
        """Sandboxed (a template, maybe from a git repository, renders text and never runs code),
        immutable (no list.append), and every way to grow a value is checked against MAX_OUTPUT."""
        code_generator_class = BoundedCode
        intercepted_binops = frozenset({"*", "**", "%", "+"})
        checked = staticmethod(_checked)

        def call_binop(self, context, operator, left, right):
            _before_binop(operator, left, right)
            return _checked(super().call_binop(context, operator, left, right))

        def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (Jinja2's own signature)
            _before_call(__obj, args, kwargs)
            return _checked(super().call(__context, __obj, *args, **kwargs))

        def wrap_str_format(self, value):
            wrapped = super().wrap_str_format(value)
            if wrapped is None:
                return None

            def checked_format(*args, **kwargs):
                if _wide_format(value.__self__, (*args, *kwargs.values())):
                    raise _TooMuch(f"it formats a value wider than {MAX_OUTPUT >> 20} MiB")
                return _checked(wrapped(*args, **kwargs))
            return checked_format

    def bounded_filter(function):
        @functools.wraps(function)
        def run(*args, **kwargs):
            _before_call(function, args, kwargs)
            return _checked(function(*args, **kwargs))
        return run

    env = Bounded(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters.update(FILTERS)
    env.filters = {name: bounded_filter(function) for name, function in env.filters.items()}
    env.globals["namespace"] = BoundedNamespace
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
