"""support.plain_console: off a terminal, ecoctl prints exactly what its rich Console printed, without
importing rich; on a terminal (or with FORCE_COLOR / TTY_COMPATIBLE=1) rich prints, in color."""

from __future__ import annotations

import io
import random
import subprocess
import sys
from types import SimpleNamespace

import pytest

from ecoctl import ui
from ecoctl.support.plain_console import PlainConsole, escape

ALPHABET = ["[", "]", "[/]", "[green]", "[/green]", "\\", "\\\\", "/", "a", "b", " ", "  ", "\x07", "\r", "\n",
            "\x0b", "\x1b", "é", "中", ":smile:", "@", "#", "=", "[@click]", "[a=1]", "[dim]", "x" * 90, "\u200b"]
TAB = "\t"


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def printed(monkeypatch, make, *args, stderr: bool = False, **kwargs) -> str:
    stream = Pipe()
    monkeypatch.setattr(sys, "stderr" if stderr else "stdout", stream)
    make(stderr).print(*args, **kwargs)
    return stream.getvalue()


@pytest.fixture(autouse=True)
def no_forced_terminal(monkeypatch):
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


def samples(count: int = 400) -> list[str]:
    generator = random.Random(17)
    return ["", "plain", "ends with a backslash\\", "[bold red]error:[/] x", "\\[not a tag]", "a\nb\n", "\n"] + [
        "".join(generator.choice(ALPHABET) for _ in range(generator.randint(1, 12))) for _ in range(count)]


def test_escape_is_rich_markup_escape():
    from rich.markup import escape as rich_escape

    for text in samples():
        assert escape(text) == rich_escape(text), repr(text)


@pytest.mark.parametrize("stderr", [False, True])
def test_plain_output_is_what_rich_prints_to_a_pipe(monkeypatch, stderr):
    from rich.errors import MarkupError, MissingStyle, StyleSyntaxError

    compared = 0
    for text in samples():
        for markup_text, kwargs in ((f"  [yellow]pending[/] {escape(text)}: {escape(text)}", {}),
                                    (text, {"markup": False}), (text, {"markup": True, "highlight": False}),
                                    (text, {})):
            try:
                expected = printed(monkeypatch, ui.rich_console, markup_text, stderr=stderr, **kwargs)
            except (MarkupError, MissingStyle, StyleSyntaxError):
                continue  # markup rich refuses: ecoctl's own markup is always valid
            assert printed(monkeypatch, ui.console, markup_text, stderr=stderr, **kwargs) == expected, \
                (markup_text, kwargs)
            compared += 1
    assert compared > 1000


def test_what_plain_output_does_not_handle_goes_to_rich(monkeypatch):
    from rich.table import Table

    table = Table("a", "b")
    table.add_row("1", "[green]2[/]")
    for args, kwargs in (((f"a{TAB}b [dim]c{TAB}[/]",), {}), ((table,), {}), (("a", "b"), {}), (("x",), {"end": ""})):
        expected = printed(monkeypatch, ui.rich_console, *args, **kwargs)
        assert printed(monkeypatch, ui.console, *args, **kwargs) == expected


def test_console_is_plain_only_where_rich_prints_no_colors(monkeypatch):
    monkeypatch.setattr(sys, "stdout", Pipe())
    assert isinstance(ui.console(), PlainConsole)
    monkeypatch.setenv("NO_COLOR", "1")
    assert isinstance(ui.console(), PlainConsole)
    monkeypatch.setenv("FORCE_COLOR", "")
    assert isinstance(ui.console(), PlainConsole)  # rich: an empty FORCE_COLOR does not force
    monkeypatch.delenv("NO_COLOR")
    for name, value in (("FORCE_COLOR", "1"), ("TTY_COMPATIBLE", "1")):
        monkeypatch.setenv(name, value)
        console = ui.console()
        assert not isinstance(console, PlainConsole) and console.is_terminal
        assert "\x1b[" in printed(monkeypatch, lambda _stderr: console, "[green]ok[/]")
        monkeypatch.delenv(name)
    tty = Pipe()
    tty.isatty = lambda: True
    monkeypatch.setattr(sys, "stdout", tty)
    assert not isinstance(ui.console(), PlainConsole)
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    assert isinstance(ui.console(), PlainConsole)


def test_service_result_and_error_print_as_before(monkeypatch):
    result = SimpleNamespace(name="svc", applied=["+ create role svc_user [x]"], spec_changed=True, started=True,
                             shown_live=False, health="starting", pending={"runtime": "not [bold]running[/]"},
                             notes=["a note\\ with [brackets]"])
    real = ui.console
    outputs = []
    for make in (real, ui.rich_console):
        monkeypatch.setattr(ui, "console", make)
        out, err = Pipe(), Pipe()
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        monkeypatch.setattr(ui, "change_line", lambda change: f"[green]{escape(str(change))}[/]")
        ui.print_service_result(result)
        ui.error("bad [thing] \\ here")
        outputs.append((out.getvalue(), err.getvalue()))
    assert outputs[0] == outputs[1]
    assert "pending runtime: not [bold]running[/]" in outputs[0][0] and outputs[0][1] == "error: bad [thing] \\ here\n"


def test_add_service_output_path_does_not_import_rich():
    code = ("import sys\nfrom types import SimpleNamespace\nfrom ecoctl import ui\n"
            "ui.print_service_result(SimpleNamespace(name='s', applied=[], spec_changed=False, started=False, "
            "shown_live=False, health=None, pending={'x': 'y'}, notes=['n']))\n"
            "ui.error('e')\nassert not [m for m in sys.modules if m.startswith('rich')], sorted(sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "s: nothing to change.\n  pending x: y\n  n\n`ecoctl up` or `ecoctl apply` finishes what is pending.\n"
    assert done.stderr == "error: e\n"
