"""First `apply` of N services to the file systems only (files, compose, prometheus, grafana: no
server needed), and `plan` with them in place, each against a baseline measured in the same run:
an empty apply (the same ecosystem, nothing to do).

    python bench/apply_200.py [services ...]      # default: 50 200 (shows whether cost is linear)
    python bench/apply_200.py 200 1000            # issue #29's row: 1000 against 200 of the same run

Each size runs in a fresh ecosystem (runtime local, Prometheus port pointed at a closed port, so a
reload finds no server). `plan` is timed as a fresh process (`python -m ecoctl plan --only ...`).
"""

from __future__ import annotations

from usage import answer_help  # bench/ is on sys.path: `python bench/NAME.py`

answer_help(__doc__)

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ecoctl.commands.init import init_ecosystem  # noqa: E402
from ecoctl.commands.reconcile import converge  # noqa: E402
from ecoctl.workspace import Workspace  # noqa: E402
from tests.helpers import free_port  # noqa: E402

ONLY = ("files", "compose", "prometheus", "grafana")
SIZES = [int(arg) for arg in sys.argv[1:]] or [50, 200]
TARGETS = {200: (10.0, 0.8), 1000: (20.0, 3.0)}
"""Services -> (first apply, plan) in seconds."""


def ecosystem_with(root: Path, count: int) -> None:
    """A fresh local ecosystem with `count` added services in ecosystem.yaml (nothing applied)."""
    init_ecosystem(root, runtime="local")
    spec = root / "ecosystem.yaml"
    text = spec.read_text().replace("prometheus_port: 9090", f"prometheus_port: {free_port()}")
    text += "".join(f"  svc{index:03d}:\n    template: python-fastapi\n    port: {10000 + index}\n"
                    f"    pattern: compose\n" for index in range(count))
    spec.write_text(text)


def timed_apply(root: Path) -> tuple[float, int]:
    start = time.perf_counter()
    done = converge(Workspace.open(root), only=ONLY)
    return time.perf_counter() - start, len(done.changes)


def timed_plan(root: Path) -> float:
    argv = [sys.executable, "-m", "ecoctl", "--dir", str(root), "plan", "--only", ",".join(ONLY)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed: .pyc used
    subprocess.run(argv, check=True, capture_output=True, env=env)  # warm
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="ecoctl-bench-") as work:
        for count in SIZES:
            root = Path(work) / f"eco{count}"
            ecosystem_with(root, count)
            first, changes = timed_apply(root)
            empty, left = timed_apply(root)
            assert left == 0, f"second apply still made {left} change(s)"
            plan = timed_plan(root)
            rows.append((count, changes, first, empty, plan))
    print(f"{'services':>8} {'changes':>7} {'first apply':>12} {'empty apply':>12} {'ratio':>6} "
          f"{'ms/service':>10} {'plan (process)':>14}")
    for count, changes, first, empty, plan in rows:
        print(f"{count:>8} {changes:>7} {first:>10.2f} s {empty:>10.2f} s {first / empty:>5.1f}x "
              f"{first * 1000 / max(count, 1):>10.1f} {plan:>12.2f} s")
    for count, _, first, _, plan in rows:
        if count in TARGETS:
            first_target, plan_target = TARGETS[count]
            print(f"{count} services: first apply {'meets' if first <= first_target else 'misses'} the "
                  f"{first_target:g} s target; plan {'meets' if plan <= plan_target else 'misses'} the "
                  f"{plan_target:g} s target")
    if len(rows) > 1:
        (small, _, t_small, _, p_small), (large, _, t_large, _, p_large) = rows[0], rows[-1]
        print(f"cost per service at {large} / at {small}: first apply {(t_large / large) / (t_small / small):.2f}, "
              f"plan {(p_large / large) / (p_small / small):.2f} (1.0 = linear; plan includes the process start)")


if __name__ == "__main__":
    main()
