"""support.lean_imports: ecoctl's process loads httpx's client without httpx's command line."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_httpx_loads_without_its_command_line_and_still_works():
    done = run("import sys\nfrom ecoctl.support.lean_imports import skip_httpx_cli\nskip_httpx_cli()\n"
               "import httpx\n"
               "assert not [m for m in sys.modules if m.split('.')[0] in ('click', 'pygments', 'rich')]\n"
               "response = httpx.Response(200, json={'a': 1}, request=httpx.Request('GET', 'http://127.0.0.1/'))\n"
               "assert response.json() == {'a': 1} and httpx.Client and httpx.AsyncClient\n"
               "httpx.main()\n")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == "the httpx command line is not loaded inside ecoctl: run `httpx` itself"


def test_no_op_once_httpx_is_loaded():
    done = run("import sys, httpx\nfrom ecoctl.support.lean_imports import skip_httpx_cli\n"
               "real = sys.modules.get('httpx._main')\nskip_httpx_cli()\n"
               "assert sys.modules.get('httpx._main') is real\n")
    assert done.returncode == 0, done.stderr


def test_the_cli_entry_point_skips_it():
    done = run("import sys\nsys.argv = ['ecoctl', '--version']\nfrom ecoctl.cli import main\n"
               "try:\n    main()\nexcept SystemExit:\n    pass\n"
               "import httpx\nassert 'rich' not in sys.modules and 'click' not in sys.modules, sorted(sys.modules)\n")
    assert done.returncode == 0, done.stderr
