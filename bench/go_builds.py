"""Local builds of go-gin services as ecoctl runs them (as the programs' user, with that user's
shared Go module and build caches), beside the floor measured in the same run: `go build` of the
same service by the caller with its own warm caches.

    python bench/go_builds.py [--services N]

Rows: the first service (modules downloaded and dependencies compiled once, unless an earlier
build of that user filled the caches: the line says which), each further service (only its own
packages compile), and a rebuild with nothing changed (ecoctl skips it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def ecoctl(root: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "ecoctl", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"ecoctl {' '.join(args)} failed: {done.stderr.strip()[-1500:]}")


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=3, help="go-gin services to build (default 3)")
    options = parser.parse_args()
    if shutil.which("go") is None:
        raise SystemExit("go is not on PATH (export PATH=$PATH:/usr/local/go/bin)")
    from ecoctl.runtimes.local import LocalRuntime
    from ecoctl.workspace import Workspace

    work = Path(tempfile.mkdtemp(prefix="ecoctl-bench-go-"))
    os.chmod(work, 0o711)
    try:
        root = work / "eco"
        ecoctl(work, "init", str(root), "--runtime", "local")
        names = [f"svc{index}" for index in range(options.services)]
        for name in names:
            ecoctl(root, "add-service", name, "--template", "go-gin", "--no-apply")
        runtime = LocalRuntime(Workspace(root))
        cache = runtime.builder.cache_dir() if runtime.builder.switches else None
        before = folder_size(cache / "go-mod") if cache else 0
        floor_out = work / "floor-binary"
        start = time.perf_counter()
        subprocess.run(["go", "build", "-trimpath", "-o", str(floor_out), "."], cwd=root / "services" / names[-1],
                       check=True, capture_output=True)
        floor = time.perf_counter() - start
        rows = []
        for name in names:
            start = time.perf_counter()
            built = runtime.build_service(name, runtime.local_run(name))
            rows.append((name, time.perf_counter() - start, built))
        start = time.perf_counter()
        again = runtime.build_service(names[0], runtime.local_run(names[0]))
        unchanged = time.perf_counter() - start
        print(f"programs' user: {runtime.account.name or 'the caller'}; module cache before the run: "
              f"{before / 1e6:.1f} MB ({'warm' if before else 'cold'})")
        print(f"{'build':<44}{'seconds':>9}{'x floor':>9}")
        print(f"{'floor: go build by the caller, warm caches':<44}{floor:>9.2f}{1:>9.1f}")
        for index, (name, seconds, built) in enumerate(rows):
            label = f"{'first' if index == 0 else 'next'} go-gin service ({name})" + ("" if built else " [skipped]")
            print(f"{label:<44}{seconds:>9.2f}{seconds / floor:>9.1f}")
        print(f"{'rebuild, nothing changed' + ('' if not again else ' [built!]'):<44}{unchanged:>9.2f}"
              f"{unchanged / floor:>9.1f}")
    finally:
        subprocess.run([sys.executable, "-m", "ecoctl", "down", "--volumes", "--yes"], cwd=work / "eco",
                       capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
