"""The live loop on the local runtime, this checkout against a baseline (another git ref of ecoctl,
`main` by default) in the same run, each on a fresh ecosystem with the same warm package caches:

- `up` of a fresh ecosystem (first up: PostgreSQL's initdb, the portfolio service's environment);
- `up` again with everything running (warm up; target <= 5 s), the median of three, and `plan`
  (nothing to do) after each;
- `add-service` of a first python-fastapi service on the running stack, then of more with the same
  dependencies (target <= 2 s: they share the first's environment), the median of `--adds`, with
  where the time goes: each progress line add-service prints is timestamped as it arrives, and the
  time between the stages' lines is shown per stage (median of the same runs).

    python bench/local_loop.py [--rounds N] [--adds N] [--baseline REF]

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

from tests.helpers import free_edge_ports, free_port  # noqa: E402

TARGETS = {"warm up": 5.0, "add-service 2nd": 2.0}


def child_env(code: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(code)  # this checkout or the baseline's worktree
    if code != ROOT:
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave nothing in the baseline's tree
    return env


def ecoctl(code: Path, root: Path, *args: str) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "ecoctl", *args], cwd=root, env=child_env(code),
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"ecoctl {' '.join(args)} ({code}) failed: {result.stderr.strip()[-2000:]}")
    return time.perf_counter() - start


STAGES = (  # (stage, a line that ends it): the first line after the previous stage's end that matches
    ("start-up, checks, files", "create service files"),
    ("compose, database, role", "create database"),
    ("runtime, until `started`", "started "),
    ("then monitoring (+ sign-in)", "create dashboard"),
    ("health", " is healthy"),
)


def stages(lines: list[tuple[float, str]], total: float) -> dict[str, float]:
    """Seconds per stage, from (arrival time, line) pairs; what follows the last stage is `exit`."""
    found, previous, index = {}, 0.0, 0
    for stage, marker in STAGES:
        while index < len(lines) and marker not in lines[index][1]:
            index += 1
        if index == len(lines):
            raise SystemExit(f"add-service printed no line with {marker!r}: {[line for _, line in lines]}")
        found[stage] = lines[index][0] - previous
        previous = lines[index][0]
    found["exit"] = total - previous
    return found


def add_service(code: Path, root: Path, name: str) -> dict[str, float]:
    """`ecoctl add-service NAME`: {"total": seconds, stage: seconds, ...}."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "ecoctl", "add-service", name, "--port", str(free_port())],
                             cwd=root, env={**child_env(code), "PYTHONUNBUFFERED": "1"}, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = [(time.perf_counter() - start, line.rstrip()) for line in child.stdout]
    if child.wait(timeout=900) != 0:
        raise SystemExit(f"ecoctl add-service {name} ({code}) failed: {[line for _, line in lines][-5:]}")
    total = time.perf_counter() - start
    return {"total": total, **stages(lines, total)}


def new_ecosystem(code: Path, name: str) -> Path:
    """`ecoctl init NAME --runtime local` in a new temporary folder, on free ports; its root."""
    work = Path(tempfile.mkdtemp(prefix="ecoctl-loop-"))
    os.chmod(work, 0o711)
    root = work / name
    ecoctl(code, work, "init", name, "--runtime", "local")
    text = (root / "ecosystem.yaml").read_text()
    for old, new in (("    port: 5432", f"    port: {free_port()}"), ("    port: 6379", f"    port: {free_port()}"),
                     ("    port: 9000", f"    port: {free_port()}"),
                     ("prometheus_port: 9090", f"prometheus_port: {free_port()}"),
                     ("    port: 8000", f"    port: {free_port()}"), ("    port: 3000", f"    port: {free_port()}")):
        text = text.replace(old, new)
    (root / "ecosystem.yaml").write_text(free_edge_ports(text))  # both stacks run side by side
    return root


def one_round(codes: dict[str, Path], adds: int) -> dict[str, tuple[dict[str, float], list[dict[str, float]]]]:
    """Both stacks up side by side, each step run for one then the other (the machine's load drifts
    alike for both): label -> (the round's times, each add-service after the first)."""
    roots: dict[str, Path] = {}
    times: dict[str, dict[str, float]] = {label: {} for label in codes}
    more: dict[str, list[dict[str, float]]] = {label: [] for label in codes}
    try:
        for label, code in codes.items():
            roots[label] = new_ecosystem(code, "loopbase" if code != ROOT else "loopthis")
        for label, code in codes.items():
            times[label]["first up"] = ecoctl(code, roots[label], "up")
        warm: dict[str, list[float]] = {label: [] for label in codes}
        plans: dict[str, list[float]] = {label: [] for label in codes}
        for _ in range(3):
            for label, code in codes.items():
                warm[label].append(ecoctl(code, roots[label], "up"))
                plans[label].append(ecoctl(code, roots[label], "plan"))
        for label, code in codes.items():
            times[label]["warm up"] = statistics.median(warm[label])
            times[label]["plan"] = statistics.median(plans[label])
            times[label]["add-service 1st"] = add_service(code, roots[label], "loyalty")["total"]
        for index in range(adds):
            for label, code in codes.items():
                more[label].append(add_service(code, roots[label], f"rewards{index}"))
        for label in codes:
            times[label]["add-service 2nd"] = statistics.median(run["total"] for run in more[label])
    finally:
        for label, root in roots.items():
            subprocess.run([sys.executable, "-m", "ecoctl", "down", "--volumes", "--yes"], cwd=root,
                           env={**os.environ, "PYTHONPATH": str(codes[label]), "PYTHONDONTWRITEBYTECODE": "1"},
                           capture_output=True, timeout=300)
            shutil.rmtree(root.parent, ignore_errors=True)
    return {label: (times[label], more[label]) for label in codes}


def load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="rounds (the first also warms the caches)")
    parser.add_argument("--adds", type=int, default=5,
                        help="add-services after the first, per round (their median is `add-service 2nd`)")
    parser.add_argument("--baseline", default="main", help="the git ref to compare with (default: main)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ecoctl-baseline-")) / "ecoctl"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--quiet", "--detach", str(base), args.baseline],
                   check=True)
    results: dict[str, list[dict[str, float]]] = {args.baseline: [], "this checkout": []}
    adds: dict[str, list[list[dict[str, float]]]] = {args.baseline: [], "this checkout": []}
    try:
        print(f"load average at start: {load()} ({os.cpu_count()} cores)")
        for _ in range(args.rounds):
            for label, (times, more) in one_round({args.baseline: base, "this checkout": ROOT}, args.adds).items():
                results[label].append(times)
                adds[label].append(more)
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
    pairs = [(old, new) for olds, news in zip(adds[args.baseline], adds["this checkout"]) for old, new in zip(olds, news)]
    print(f"add-service after the first, where the time goes (median of {len(pairs)} runs each, run in turns; "
          "stages end at their progress line):")
    print(f"  {'stage':<32} {args.baseline[:12]:>12} {'this checkout':>14}")
    for stage in ("total", *(stage for stage, _ in STAGES), "exit"):
        old, new = (statistics.median(pair[side][stage] for pair in pairs) for side in (0, 1))
        print(f"  {stage:<32} {old:10.2f} s {new:12.2f} s")
    ratios = sorted(new["total"] / old["total"] for old, new in pairs)
    print(f"  this checkout / {args.baseline}, median of the {len(pairs)} pairs' ratios: "
          f"{statistics.median(ratios):.2f}x (range {ratios[0]:.2f}x-{ratios[-1]:.2f}x)")
    print(f"load average at the end: {load()}")


if __name__ == "__main__":
    main()
