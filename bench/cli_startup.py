"""Median wall time of `ecoctl --help` and every subcommand's `--help` against two baselines
measured in the same run: `python -c pass`, and a two-command Typer app's `--help` (the framework's
own floor). Target: each under 150 ms.

    python bench/cli_startup.py [runs]
"""

from __future__ import annotations

from usage import answer_help  # bench/ is on sys.path: `python bench/NAME.py`

answer_help(__doc__)

import os
import resource
import statistics
import subprocess
import sys
import time

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed: .pyc used
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
MINIMAL_TYPER_APP = """
import typer
app = typer.Typer(rich_markup_mode=None, add_completion=False)
@app.command()
def first(x: int = 1): pass
@app.command()
def second(y: str = "y"): pass
app()
"""


def subcommands() -> list[list[str]]:
    """Every command path of the CLI: [], [init], ..., [secrets, show] (read from the Typer app)."""
    import typer.main

    from ecoctl.cli import app

    group = typer.main.get_command(app)
    paths: list[list[str]] = [[]]
    for name, command in group.commands.items():
        paths.append([name])
        paths.extend([name, sub] for sub in getattr(command, "commands", {}))
    return paths


COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "minimal Typer --help": [sys.executable, "-c", MINIMAL_TYPER_APP, "--help"],
    **{" ".join(["ecoctl", *path, "--help"]): [sys.executable, "-m", "ecoctl", *path, "--help"]
       for path in subcommands()},
}


def median_ms(argv: list[str]) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system of the child: steadier on a busy machine)."""
    subprocess.run(argv, capture_output=True, check=True, env=ENV)  # warm the page cache and .pyc files
    walls, cpus = [], []
    for _ in range(RUNS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=ENV)
        walls.append((time.perf_counter() - start) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    measured = {label: median_ms(argv) for label, argv in COMMANDS.items()}
    results = {label: wall for label, (wall, _) in measured.items()}
    baseline = results["python -c pass"]
    floor = results["minimal Typer --help"]
    cpu_floor = measured["minimal Typer --help"][1]
    print(f"median of {RUNS} runs (wall; CPU = user+system of the process)")
    for label, (value, cpu) in measured.items():
        print(f"{label:<38} {value:7.1f} ms   {value / baseline:5.1f}x python -c pass   "
              f"{value / floor:4.2f}x minimal Typer app   CPU {cpu:6.1f} ms {cpu / cpu_floor:4.2f}x")
    target = 150.0
    ecoctl = {label: value for label, value in results.items() if label.startswith("ecoctl")}
    slowest = max(ecoctl, key=ecoctl.get)
    over = [label for label, value in ecoctl.items() if value >= target]
    print(f"slowest: {slowest} {ecoctl[slowest]:.1f} ms ({ecoctl[slowest] / floor:.2f}x minimal Typer app); "
          + (f"{len(over)} over the {target:.0f} ms target: {', '.join(over)}" if over
             else f"all {len(ecoctl)} under the {target:.0f} ms target"))


if __name__ == "__main__":
    main()
