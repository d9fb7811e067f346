"""The live loop on the local runtime, this checkout against a baseline (another git ref of ecoctl,
`main` by default) in the same run, each on a fresh ecosystem with the same warm package caches:

- `up` of a fresh ecosystem (first up: PostgreSQL's initdb, the portfolio service's environment);
- `up` again with everything running (warm up; target <= 5 s), the median of three;
- `add-service` of a first python-fastapi service on the running stack, then of a second one with the
  same dependencies (target <= 2 s: with #29 the second shares the first's environment).

    python bench/local_loop.py [--rounds N] [--baseline REF]

The baseline is run from a temporary `git worktree` of REF (removed after) with this checkout's
virtual environment; each round runs the baseline, then this checkout. The machine is shared: the
load average is printed with the numbers, and the ratios (this / baseline) are of the same round.
"""

from __future__ import annotations

from usage import answer_help  # bench/ is on sys.path: `python bench/NAME.py`

answer_help(__doc__)

import argparse  # noqa: E402
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port  # noqa: E402

TARGETS = {"warm up": 5.0, "add-service 2nd": 2.0}


def ecoctl(code: Path, root: Path, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(code)  # this checkout or the baseline's worktree
    if code != ROOT:
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave nothing in the baseline's tree
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "ecoctl", *args], cwd=root, env=env,
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"ecoctl {' '.join(args)} ({code}) failed: {result.stderr.strip()[-2000:]}")
    return time.perf_counter() - start


def one_round(code: Path) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="ecoctl-loop-"))
    os.chmod(work, 0o711)
    root = work / "demo"
    try:
        ecoctl(code, work, "init", "demo", "--runtime", "local")
        text = (root / "ecosystem.yaml").read_text()
        for old, new in (("    port: 5432", f"    port: {free_port()}"), ("    port: 6379", f"    port: {free_port()}"),
                         ("    port: 9000", f"    port: {free_port()}"),
                         ("prometheus_port: 9090", f"prometheus_port: {free_port()}"),
                         ("    port: 8000", f"    port: {free_port()}")):
            text = text.replace(old, new)
        (root / "ecosystem.yaml").write_text(text)
        try:
            times = {"first up": ecoctl(code, root, "up")}
            times["warm up"] = statistics.median(ecoctl(code, root, "up") for _ in range(3))
            times["add-service 1st"] = ecoctl(code, root, "add-service", "loyalty", "--port", str(free_port()))
            times["add-service 2nd"] = ecoctl(code, root, "add-service", "rewards", "--port", str(free_port()))
        finally:
            subprocess.run([sys.executable, "-m", "ecoctl", "down", "--volumes", "--yes"], cwd=root,
                           env={**os.environ, "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"},
                           capture_output=True, timeout=300)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return times


def load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="rounds (the first also warms the caches)")
    parser.add_argument("--baseline", default="main", help="the git ref to compare with (default: main)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ecoctl-baseline-")) / "ecoctl"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--quiet", "--detach", str(base), args.baseline],
                   check=True)
    results: dict[str, list[dict[str, float]]] = {args.baseline: [], "this checkout": []}
    try:
        print(f"load average at start: {load()} ({os.cpu_count()} cores)")
        for _ in range(args.rounds):
            results[args.baseline].append(one_round(base))
            results["this checkout"].append(one_round(ROOT))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
        shutil.rmtree(base.parent, ignore_errors=True)
    rows = list(results["this checkout"][0])
    print(f"{'code':<16} {'round':>5} " + " ".join(f"{row:>16}" for row in rows))
    for code, rounds in results.items():
        for index, times in enumerate(rounds, 1):
            print(f"{code[:16]:<16} {index:>5} " + " ".join(f"{times[row]:>14.2f} s" for row in rows))
    before, after = results[args.baseline][-1], results["this checkout"][-1]
    print(f"last round, this checkout / {args.baseline} (load average now {load()}):")
    for row in rows:
        target = f" (target <= {TARGETS[row]:.0f} s)" if row in TARGETS else ""
        print(f"  {row:<16} {after[row]:6.2f} s vs {before[row]:6.2f} s = {after[row] / before[row]:.2f}x{target}")


if __name__ == "__main__":
    main()
