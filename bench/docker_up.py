"""`ecoctl up` on a running docker stack with nothing changed: wall time and the lines it prints,
against a baseline measured in the same run: a bare `docker compose up --detach` of the same files.

    python bench/docker_up.py

Uses the docker integration test's stack (test images from tests/docker/setup.sh, the Authentik
double on the docker bridge); the stack is removed at the end.
"""

from __future__ import annotations

from usage import answer_help  # bench/ is on sys.path: `python bench/NAME.py`

answer_help(__doc__)

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration import test_docker_runtime as docker_tests  # noqa: E402


class _Factory:
    def mktemp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"ecoctl-{name}-"))


def _unwrap(fixture):
    """The function under a pytest fixture (pytest >= 8.4 wraps it in a definition object)."""
    for attribute in ("_get_wrapped_function", "__pytest_wrapped__"):
        found = getattr(fixture, attribute, None)
        if callable(found):
            return found()
        if found is not None:
            return found.obj
    return fixture


def main() -> None:
    if docker_tests.ENGINE_PROBLEM:
        raise SystemExit(docker_tests.ENGINE_PROBLEM)
    from ecoctl.commands import stack as stack_module
    from ecoctl.workspace import Workspace

    authentik = _unwrap(docker_tests.authentik)()
    double = next(authentik)
    stack = _unwrap(docker_tests.stack)(_Factory(), double)
    info = next(stack)
    try:
        root = info["root"]
        runtime = docker_tests._runtime(root)
        start = time.perf_counter()
        runtime.compose("up", "--detach", "--wait", "postgres", "redis", "prometheus", "portfolio")
        bare = time.perf_counter() - start
        messages: list[str] = []
        start = time.perf_counter()
        stack_module.up(Workspace(root), progress=messages.append, health_timeout=60)
        up = time.perf_counter() - start
        builder, building = [], False  # what compose printed while a command that builds ran
        for line in messages:
            if line.startswith("docker compose "):
                building = " build" in line or "--build" in line
            elif building:
                builder.append(line)
        print(f"docker compose up --detach --wait (the same services, nothing to do): {bare:6.1f} s")
        print(f"ecoctl up (nothing changed):                                          {up:6.1f} s  = {up / bare:.2f}x, "
              f"{len(messages)} progress lines, {len(builder)} of them printed by a build step")
    finally:
        for generator in (stack, authentik):
            for _ in generator:
                pass


if __name__ == "__main__":
    main()
