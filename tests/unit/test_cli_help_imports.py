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



def test_add_service_with_plain_values_does_not_import_pydantic(tmp_path):
    from ecoctl.commands.init import init_ecosystem

    init_ecosystem(tmp_path / "eco", runtime="local", without=("web",))
    result = subprocess.run([sys.executable, "-c", PROBE, "--dir", str(tmp_path / "eco"), "add-service", "loyalty",
                             "--port", "0081", "--reads", "portfolio", "--no-apply"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    heavy = next(line for line in result.stderr.splitlines() if line.startswith("HEAVY:"))
    assert "pydantic" not in heavy and "ruamel" in heavy, heavy  # (it did read and write YAML)
    assert "port: 81\n" in (tmp_path / "eco" / "ecosystem.yaml").read_text()  # "0081" read as Typer reads it


@pytest.mark.parametrize("argv, words", [
    (["--port", "70000"], "--port 70000 is not a TCP port"),
    (["--port", "-1"], "--port -1 is not a TCP port"),
    (["--replicas", "101"], "Invalid value for '--replicas'"),  # out of Typer's min/max: its own check
    (["--port", "8x"], "Invalid value for '--port'"),
    (["--port", "\uff18\uff10"], "Invalid value for '--port'"),  # fullwidth digits are not a plain value
])
def test_values_outside_the_plain_path_get_typers_errors(tmp_path, argv, words):
    from ecoctl.commands.init import init_ecosystem

    init_ecosystem(tmp_path / "eco", runtime="local", without=("web",))
    before = (tmp_path / "eco" / "ecosystem.yaml").read_text()
    result = subprocess.run([sys.executable, "-m", "ecoctl", "--dir", str(tmp_path / "eco"), "add-service", "xx",
                             *argv, "--no-apply"], capture_output=True, text=True)
    assert result.returncode == 2 and words in result.stderr, result.stderr
    assert (tmp_path / "eco" / "ecosystem.yaml").read_text() == before


def test_a_float_option_left_at_its_default_imports_no_pydantic(tmp_path):
    """`up` (its --timeout is a float) with plain values: Typer's pydantic coercion is not built (#29:
    ~0.8 s of every warm `up` under load). The command fails after its options were processed (no
    ecosystem in an empty folder)."""
    probe = """
import sys
sys.argv = ["ecoctl", "--dir", sys.argv[1], "up"]
from ecoctl.cli import app
try:
    app()
except BaseException as exc:
    print("FAILED:" + type(exc).__name__)
print("PYDANTIC:" + str("pydantic" in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True)
    assert "FAILED:UsageError" in result.stdout, result.stdout + result.stderr
    assert "PYDANTIC:False" in result.stdout
