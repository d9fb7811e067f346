"""The local loop on the local runtime, with uv building the service environments and with pip
(`ECOCTL_INSTALLER=pip`, the baseline) in the same run: first `ecoctl up` of a fresh ecosystem
(install -> healthy portfolio), then `ecoctl add-service loyalty` on the running stack.

    python bench/local_loop.py [rounds]     # default 2: the first round warms the package caches

Each round is a fresh ecosystem (fresh ports), stopped with `down --volumes` after.
"""

from __future__ import annotations

from usage import answer_help  # bench/ is on sys.path: `python bench/NAME.py`

answer_help(__doc__)

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 2


def ecoctl(root: Path, *args: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "ecoctl", *args], cwd=root, env=env,
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"ecoctl {' '.join(args)} failed: {result.stderr.strip()[-2000:]}")
    return time.perf_counter() - start


def one_round(work: Path, installer: str) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if installer == "pip":
        env["ECOCTL_INSTALLER"] = "pip"
    subprocess.run([sys.executable, "-m", "ecoctl", "init", "demo", "--runtime", "local"], cwd=work,
                   env=env, check=True, capture_output=True)
    root = work / "demo"
    text = (root / "ecosystem.yaml").read_text()
    for old, new in (("    port: 5432", f"    port: {free_port()}"), ("    port: 6379", f"    port: {free_port()}"),
                     ("prometheus_port: 9090", f"prometheus_port: {free_port()}"),
                     ("    port: 8000", f"    port: {free_port()}")):
        text = text.replace(old, new)
    (root / "ecosystem.yaml").write_text(text)
    try:
        up = ecoctl(root, "up", env=env)
        add = ecoctl(root, "add-service", "loyalty", "--port", str(free_port()), env=env)
    finally:
        subprocess.run([sys.executable, "-m", "ecoctl", "down", "--volumes", "--yes"], cwd=root, env=env,
                       capture_output=True, timeout=300)
    return up, add


def main() -> None:
    results: dict[str, list[tuple[float, float]]] = {"pip": [], "uv": []}
    for installer in results:
        for _ in range(ROUNDS):
            work = Path(tempfile.mkdtemp(prefix="ecoctl-loop-"))
            os.chmod(work, 0o711)
            try:
                results[installer].append(one_round(work, installer))
            finally:
                shutil.rmtree(work, ignore_errors=True)
    print(f"{'installer':<10} {'round':>5} {'first up':>9} {'add-service loyalty':>20}")
    for installer, rounds in results.items():
        for index, (up, add) in enumerate(rounds, 1):
            print(f"{installer:<10} {index:>5} {up:>7.1f} s {add:>18.1f} s")
    (pip_up, pip_add), (uv_up, uv_add) = results["pip"][-1], results["uv"][-1]
    print(f"last round (warm caches): first up {uv_up:.1f} s with uv = {uv_up / pip_up:.2f}x pip's {pip_up:.1f} s "
          f"(target <= 25 s); add-service {uv_add:.1f} s = {uv_add / pip_add:.2f}x pip's {pip_add:.1f} s "
          f"(target <= 5 s)")


if __name__ == "__main__":
    main()
