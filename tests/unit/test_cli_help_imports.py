"""`--help` of every subcommand prints without importing the heavy libraries (pydantic, ruamel,
jinja2, httpx, psycopg, docker): checked by what a fresh process has in sys.modules, not by time."""

import subprocess
import sys

import pytest

HEAVY = ("pydantic", "ruamel", "jinja2", "httpx", "psycopg", "docker", "rich")
PROBE = """
import sys
sys.argv = ["ecoctl", *sys.argv[1:]]
from ecoctl.cli import app
try:
    app()
except SystemExit as exit:
    code = exit.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(%r))
print("HEAVY:" + ",".join(heavy), file=sys.stderr)
sys.exit(code)
""" % (HEAVY,)


def _commands() -> list[list[str]]:
    from ecoctl.cli import app
    import typer.main

    group = typer.main.get_command(app)
    argvs = [[]]
    for name, command in group.commands.items():
        argvs.append([name])
        argvs.extend([name, sub] for sub in getattr(command, "commands", {}))
    return argvs


@pytest.mark.parametrize("argv", _commands(), ids=lambda argv: " ".join(argv) or "ecoctl")
def test_help_imports_nothing_heavy(argv):
    result = subprocess.run([sys.executable, "-c", PROBE, *argv, "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "--help" in result.stdout
    assert "HEAVY:\n" in result.stderr, result.stderr


def test_values_are_still_checked_after_deferral(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ecoctl", "--dir", str(tmp_path), "add-service", "x",
                             "--port", "abc"], capture_output=True, text=True)
    assert result.returncode == 2 and "--port" in result.stderr and "integer" in result.stderr
