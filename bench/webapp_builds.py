"""`ecoctl up` of fresh local ecosystems with the web app `init` ships, beside one without it.

    python bench/webapp_builds.py

Three fresh ecosystems (ports moved to free ones): BASE (`init --without web`, the baseline of this
run), then A and B, both with the web app, whose sources carry one marker unique to this run (so
A's build is new to the host's build cache, and B's sources are the same as A's). Each gets a first
and a second `up`; printed: the seconds of each, and what the web app cost over BASE. A's first
`up` pays `npm ci` + `vite build`; B's first links the cached `dist/` (`run.local.shared:
node-build`). Needs npm; run as root, builds run as the programs' user.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ecoctl(root: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "ecoctl", *args], cwd=root, capture_output=True, text=True,
                          timeout=1800)
    if done.returncode != 0:
        sys.exit(f"`ecoctl {' '.join(args)}` failed in {root}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh(base: Path, name: str, web: bool, marker: str) -> Path:
    base.mkdir()
    ecoctl(base, "init", name, "--runtime", "local", *(() if web else ("--without", "web")))
    root = base / name
    text = (root / "ecosystem.yaml").read_text()
    for setting in ("    port: 5432", "    port: 6379", "    port: 9000", "prometheus_port: 9090", "    port: 8000"):
        text = text.replace(setting, f"{setting.rsplit(' ', 1)[0]} {free_port()}")
    if web:
        port = free_port()
        text = text.replace("    port: 3000", f"    port: {port}").replace("127.0.0.1:3000/", f"127.0.0.1:{port}/")
        main = root / "services" / "web" / "src" / "main.tsx"
        main.write_text(main.read_text() + f"\n// {marker}\n")
    (root / "ecosystem.yaml").write_text(text)
    return root


def timed_up(root: Path) -> float:
    started = time.perf_counter()
    ecoctl(root, "up")
    return time.perf_counter() - started


def main() -> None:
    argparse.ArgumentParser(prog="webapp_builds.py", description=__doc__.split("\n\n")[0]).parse_args()
    if shutil.which("npm") is None:
        sys.exit("npm is not on PATH: apt-get install nodejs npm")
    marker = f"bench {uuid.uuid4()}"
    work = Path(tempfile.mkdtemp(prefix="ecoctl-bench-web-"))
    work.chmod(0o755)
    roots = []
    try:
        rows = []
        for label, web in (("BASE (--without web)", False), ("A (web, new sources)", True),
                           ("B (web, A's sources)", True)):
            root = fresh(work / label.split()[0], "demo", web, marker)
            roots.append(root)
            rows.append((label, timed_up(root), timed_up(root)))
        base_first, base_second = rows[0][1], rows[0][2]
        print(f"{'ecosystem':<24}{'first up (s)':>14}{'second up (s)':>15}{'web over BASE, first (s)':>27}")
        for label, first, second in rows:
            print(f"{label:<24}{first:>14.1f}{second:>15.1f}{first - base_first:>27.1f}")
        print(f"baseline (same run): BASE first {base_first:.1f} s, second {base_second:.1f} s")
    finally:
        for root in roots:
            subprocess.run([sys.executable, "-m", "ecoctl", "down", "--volumes", "--yes"], cwd=root,
                           capture_output=True, timeout=300)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
