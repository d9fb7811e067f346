"""Rendering a template is bounded (issue 27, item 8): a nested `range(100000)` loop ran until
killed, `{{ 'A'*3000000000 }}` reached 8.8 GB RSS, and a 300 MB template file took 1.56 GB and
made a 420 MB pristine render. Each is now one line (exit 2) within bounded time and memory; the
child runs capped (RLIMIT_AS 2 GiB, killed after 60 s) so a regression fails instead of taking
the machine down."""

import os
import resource
import subprocess
import sys
import threading
import time

import pytest

from tests.helpers import assert_refused, new_ecosystem_dir

RSS_LIMIT_KB = 300 * 1024
MANIFEST = "name: heavy\ndescription: heavy\ndefault_port: 8400\nversion: 1\nvariables:\n  service_name: {required: true}\n"


def run_capped(*args, cwd) -> tuple[subprocess.CompletedProcess, int, float]:
    """(the CLI's result, its peak RSS in KB, seconds) for `ecoctl ARGS` in CWD."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "ecoctl", *args], cwd=cwd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, preexec_fn=limit)
    killer = threading.Timer(60, child.kill)
    killer.start()
    try:
        stdout, stderr = child.stdout.read().decode(), child.stderr.read().decode()
        _, status, usage = os.wait4(child.pid, 0)
    finally:
        killer.cancel()
    code = os.waitstatus_to_exitcode(status)
    return subprocess.CompletedProcess(args, code, stdout, stderr), usage.ru_maxrss, time.monotonic() - started


@pytest.fixture
def eco(tmp_path):
    return new_ecosystem_dir(tmp_path)


def template(folder, files: dict[str, str]):
    (folder / "files").mkdir(parents=True)
    (folder / "template.yaml").write_text(MANIFEST)
    for rel, text in files.items():
        (folder / "files" / rel).write_text(text)
    return folder


@pytest.mark.parametrize("body, words", [
    ("{{ 'A'*3000000000 }}", "more than 4 MiB"),
    ("{% for i in range(100) %}{{ 'A'*100000 }}{% endfor %}", "renders more than 4 MiB"),
    ("{% set a = 'AAAAAAAAAAAAAAAA' %}" + "{% set a = a ~ a %}" * 40 + "{{ a }}", "more than 4 MiB"),
    ("{{ ('A'*1000000)|replace('A', 'A'*1000) }}", "more than 4 MiB"),
    ("{{ '{:>999999999}'.format(1) }}", "wider than 4 MiB"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "longer than 10 s"),
], ids=["multiply", "output", "concat", "replace", "format", "time"])
def test_a_render_past_its_bounds_is_one_line(eco, tmp_path, body, words):
    folder = template(tmp_path / "heavy", {"app.py.j2": body})
    result, peak_kb, seconds = run_capped("add-service", "heavy", "--template", str(folder), "--no-apply", cwd=eco)
    assert_refused(result, 2, "app.py", words)
    assert peak_kb < RSS_LIMIT_KB, f"peak RSS {peak_kb} KB"
    assert seconds < 40
    assert not (eco / "services" / "heavy").exists()


def test_a_huge_template_file_is_refused_before_it_is_read(eco, tmp_path):
    folder = template(tmp_path / "heavy", {"app.py": "print('hi')\n"})
    with open(folder / "files" / "data.bin", "wb") as handle:
        handle.truncate(300 << 20)  # sparse: 300 MB that take no disk
    result, peak_kb, _ = run_capped("add-service", "heavy", "--template", str(folder), "--no-apply", cwd=eco)
    assert_refused(result, 2, "data.bin", "larger than 4 MiB")
    assert peak_kb < RSS_LIMIT_KB, f"peak RSS {peak_kb} KB"
    assert not (eco / ".ecoctl" / "pristine" / "heavy.json").exists()


def test_an_honest_jinja_template_still_renders(eco, tmp_path):
    folder = template(tmp_path / "fine", {"app.py.j2": "{% for i in range(3) %}# {{ service_name|upper }} {{ i }}\n"
                                                      "{% endfor %}{{ '%05d' % 42 }}\n"})
    result, _, _ = run_capped("add-service", "fine", "--template", str(folder), "--no-apply", cwd=eco)
    assert result.returncode == 0, result.stderr
    assert (eco / "services" / "fine" / "app.py").read_text() == "# FINE 0\n# FINE 1\n# FINE 2\n00042\n"
