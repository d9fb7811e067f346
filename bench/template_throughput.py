"""Request throughput of the two service templates on the same endpoint, authenticated `GET /items`
(token check + one database query), each rendered for `loyalty`, built as the local runtime would
(Go binary; uv venv for Python) and started against one real PostgreSQL. The Python template is the
baseline, measured in the same run; the ratio go/python is printed.

The load comes from this process: THREADS threads, each with one keep-alive connection, for
SECONDS seconds per template after a warm-up. On a small machine the client shares the cores with
the server, so the ratio is a lower bound of the servers' own difference.

    python bench/template_throughput.py [seconds] [threads]
"""

from __future__ import annotations

from usage import answer_help  # bench/ is on sys.path: `python bench/NAME.py`

answer_help(__doc__)

import http.client
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "templates"))

from ecoctl.runtimes.local.postgres import PostgresServer  # noqa: E402
from tests.helpers import free_port  # noqa: E402
from go_service import Keys, ServiceDatabase, build, render, service_env  # noqa: E402

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 8.0
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 4
PATH = "/items"


def load(port: int, token: str, seconds: float, threads: int) -> tuple[int, int]:
    """(requests answered 200, other answers) in `seconds` from `threads` keep-alive clients."""
    counts = [[0, 0] for _ in range(threads)]
    stop = time.monotonic() + seconds

    def client(slot: list[int]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Authorization": f"Bearer {token}"}
        while time.monotonic() < stop:
            conn.request("GET", PATH, headers=headers)
            response = conn.getresponse()
            response.read()
            slot[0 if response.status == 200 else 1] += 1
        conn.close()

    workers = [threading.Thread(target=client, args=(slot,)) for slot in counts]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def wait_healthy(port: int, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{what} exited with code {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"{what} did not become healthy within 60 s")


def measure(name: str, argv: list[str], env: dict[str, str], cwd: Path, token: str) -> float:
    port = int(env["PORT"])
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(port, process, name)
        load(port, token, 1.0, THREADS)  # warm-up: connections, JWKS fetch, caches
        ok, other = load(port, token, SECONDS, THREADS)
    finally:
        process.terminate()
        process.wait(timeout=20)
    if other:
        sys.exit(f"{name}: {other} answers were not 200")
    rate = ok / SECONDS
    print(f"{name:16s} {rate:9.0f} req/s  ({ok} requests in {SECONDS:.0f} s, {THREADS} connections)")
    return rate


def main() -> None:
    if shutil.which("go") is None or shutil.which("uv") is None:
        sys.exit("template_throughput: needs `go` and `uv` on PATH")
    work = Path(tempfile.mkdtemp(prefix="ecoctl-bench-tpl-"))
    os.chmod(work, 0o711)  # the server may run as the unprivileged `ecoctl` user
    server = PostgresServer(data_dir=work / "pg", port=free_port(), password=secrets.token_urlsafe(16))
    server.start()
    keys = Keys(work)
    try:
        go_dir = render(work / "go" / "loyalty", "go-gin")
        py_dir = render(work / "py" / "loyalty", "python-fastapi")
        t0 = time.monotonic()
        binary = build(go_dir, work / "bin" / "loyalty")
        t1 = time.monotonic()
        venv = work / "venv"
        subprocess.run(["uv", "venv", "-q", str(venv)], check=True)
        subprocess.run(["uv", "pip", "install", "-q", "--python", str(venv / "bin" / "python"), str(py_dir)],
                       check=True)
        t2 = time.monotonic()
        print(f"build: go {t1 - t0:.1f} s, python venv {t2 - t1:.1f} s")

        token = keys.token()
        jwks = {"OIDC_JWKS_FILE": str(keys.file)}
        rates = {}
        for name, argv, cwd in [("python-fastapi", [str(venv / "bin" / "python"), "-m", "loyalty"], py_dir.parent),
                                ("go-gin", [str(binary)], go_dir)]:
            database = ServiceDatabase(server, f"bench_{name.replace('-', '_')}", f"bench_{name[:2]}_user")
            database.create()
            env = {**service_env(database.env, free_port(), jwks), "PYTHONUNBUFFERED": "1"}
            env["PATH"] = f"{venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"
            rates[name] = measure(name, argv, env, cwd, token)
        print(f"ratio go/python  {rates['go-gin'] / rates['python-fastapi']:9.1f}x  (GET {PATH}, authenticated)")
    finally:
        keys.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
