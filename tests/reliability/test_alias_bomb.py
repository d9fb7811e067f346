"""Hostile YAML (issue 12): a 1.5 KB file of nested aliases must be refused quickly, within a
bounded memory, with one line (exit 2). Each run is a real `ecoctl plan` in a child process whose
peak RSS is read from the kernel (wait4); the child is capped (RLIMIT_AS) and killed after 60 s,
so a regression fails the test instead of taking the machine down."""

import os
import resource
import subprocess
import sys
import threading

import pytest

RSS_LIMIT_KB = 200 * 1024


def bomb(where: str) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    tail = {"name": "name: *a9\nruntime: local\n",
            "reads": "name: eco\nruntime: local\nservices:\n  edge:\n    port: 8300\n    reads: *a9\n",
            "images": "name: eco\nruntime: local\nimages: {python: *a9}\n",
            "recursive": "name: eco\nruntime: local\nloop: &loop [*loop, *loop]\n"}[where]
    return tail if where == "recursive" else "\n".join(lines) + "\n" + tail


def run_capped(cwd) -> tuple[int, str, int]:
    """(exit code, stderr, peak RSS in KB) of `ecoctl plan` in CWD."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    child = subprocess.Popen([sys.executable, "-m", "ecoctl", "plan"], cwd=cwd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, preexec_fn=limit)
    killer = threading.Timer(60, child.kill)
    killer.start()
    try:
        stderr = child.stderr.read().decode()
        _, status, usage = os.wait4(child.pid, 0)
    finally:
        killer.cancel()
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, stderr, usage.ru_maxrss


@pytest.mark.parametrize("where", ["name", "reads", "images", "recursive"])
def test_nested_aliases_are_refused_within_bounds(tmp_path, where):
    text = bomb(where)
    assert len(text) < 1600
    (tmp_path / "ecosystem.yaml").write_text(text)
    code, stderr, peak_kb = run_capped(tmp_path)
    assert code == 2, stderr[-500:]
    assert len(stderr.strip().splitlines()) == 1 and len(stderr) < 400, stderr[-500:]
    assert "ecosystem.yaml" in stderr
    assert peak_kb < RSS_LIMIT_KB, f"peak RSS {peak_kb} KB"


def test_a_few_honest_aliases_still_load(tmp_path):
    from ecoctl.model import EcosystemFile

    (tmp_path / "ecosystem.yaml").write_text(
        "name: eco\nruntime: local\nservices:\n"
        "  a-svc:\n    port: 8300\n    redirect_uris: &uris ['http://127.0.0.1:8300/cb']\n"
        "  b-svc:\n    port: 8301\n    redirect_uris: *uris\n")
    model = EcosystemFile.load(tmp_path / "ecosystem.yaml").model
    assert model.services["b-svc"].redirect_uris == ["http://127.0.0.1:8300/cb"]


def test_the_bound_grows_with_the_file_written_out_not_with_its_aliases():
    """compose.yaml of 1000 services is 1.3 MB and 40,000 values: it loads; a bomb padded to the
    same size is still refused, since its aliases expand past what that size can hold."""
    from ecoctl.errors import UsageError
    from ecoctl.support.yaml import fast_load

    def service(index: int) -> str:
        return f"  svc{index}:\n    environment:\n" + "".join(
            f"      KEY_{key}: http://127.0.0.1:9000/application/o/eco-svc{index}/{key}/\n" for key in range(20))

    big = "services:\n" + "".join(service(index) for index in range(1000))
    assert len(big) > 1 << 20
    assert len(fast_load("compose.yaml", big)["services"]) == 1000
    padded = bomb("name") + "# padding\n" * (len(big) // 10)
    with pytest.raises(UsageError, match="^compose.yaml: refused: more than"):
        fast_load("compose.yaml", padded)
