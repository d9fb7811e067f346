"""Median wall time of `ecoctl --help` and `ecoctl plan --help` against two baselines measured in
the same run: `python -c pass`, and a two-command Typer app's `--help` (the framework's own floor).

    python bench/cli_startup.py [runs]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

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
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "minimal Typer --help": [sys.executable, "-c", MINIMAL_TYPER_APP, "--help"],
    "ecoctl --help": [sys.executable, "-m", "ecoctl", "--help"],
    "ecoctl plan --help": [sys.executable, "-m", "ecoctl", "plan", "--help"],
    "ecoctl init --help": [sys.executable, "-m", "ecoctl", "init", "--help"],
}


def median_ms(argv: list[str]) -> float:
    subprocess.run(argv, capture_output=True, check=True)  # warm the page cache and .pyc files
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    results = {label: median_ms(argv) for label, argv in COMMANDS.items()}
    baseline = results["python -c pass"]
    floor = results["minimal Typer --help"]
    print(f"median of {RUNS} runs")
    for label, value in results.items():
        print(f"{label:<22} {value:7.1f} ms   {value / baseline:5.1f}x python -c pass   "
              f"{value / floor:4.2f}x minimal Typer app")
    target = 150.0
    verdict = "meets" if results["ecoctl --help"] < target else "misses"
    print(f"ecoctl --help {verdict} the {target:.0f} ms target")


if __name__ == "__main__":
    main()
