"""Wall time of `ecoctl add-service` (no container start) next to a minimal script doing the same
SQL and HTTP calls directly, both as fresh processes against a real PostgreSQL and the Authentik
test double on loopback. Both run with compiled bytecode, as an installed package does (`pip install`
compiles it; a shell with PYTHONDONTWRITEBYTECODE=1 and an editable install would compile every
module on every run, both sides): the children write it under a temporary PYTHONPYCACHEPREFIX, and
one untimed run of each comes first.

    python bench/add_service.py [rounds]
"""

from __future__ import annotations

from usage import answer_help  # bench/ is on sys.path: `python bench/NAME.py`

answer_help(__doc__)

import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ecoctl.runtimes.local.postgres import PostgresServer  # noqa: E402
from tests.helpers import free_port  # noqa: E402
from ecoctl.commands.init import init_ecosystem  # noqa: E402
from tests.authentik_double import AuthentikDouble  # noqa: E402
from tests.helpers import point_ecosystem_at  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5

MINIMAL = r'''
import sys, httpx, psycopg
from psycopg import sql
name, dsn, base, token, password = sys.argv[1:6]
with psycopg.connect(dsn, autocommit=True) as conn:
    role, db = f"{name}_user", f"{name}_db"
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier)))
    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(role)))
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(db)))
with httpx.Client(base_url=base + "/api/v3", headers={"Authorization": "Bearer " + token}) as api:
    flow = lambda slug: api.get("/flows/instances/", params={"slug": slug}).json()["results"][0]["pk"]
    cert = api.get("/crypto/certificatekeypairs/", params={"name": "authentik Self-signed Certificate"}).json()["results"][0]["pk"]
    mappings = [m["pk"] for m in api.get("/propertymappings/provider/scope/", params={"managed": [
        f"goauthentik.io/providers/oauth2/scope-{s}" for s in ("openid", "email", "profile")]}).json()["results"]]
    provider = api.post("/providers/oauth2/", json={
        "name": f"{name}-provider", "client_type": "confidential", "client_id": name,
        "authorization_flow": flow("default-provider-authorization-implicit-consent"),
        "invalidation_flow": flow("default-provider-invalidation-flow"),
        "redirect_uris": [{"matching_mode": "strict", "url": "http://127.0.0.1:8080/callback"}],
        "signing_key": cert, "property_mappings": mappings}).json()
    api.post("/core/applications/", json={"name": name, "slug": name, "provider": provider["pk"]}).raise_for_status()
'''


CHILD_ENV: dict[str, str] = {}


def timed(argv: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True, env=CHILD_ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="ecoctl-bench-"))
    os.chmod(work, 0o711)
    server = PostgresServer(data_dir=work / "pg", port=free_port(), password=secrets.token_urlsafe(16))
    server.start()
    double = AuthentikDouble(page_size=100).start()
    CHILD_ENV.update({key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"},
                     PYTHONPYCACHEPREFIX=str(work / "pycache"))
    try:
        root = work / "eco"
        init_ecosystem(root, runtime="local")
        point_ecosystem_at(root, postgres_port=server.port, postgres_password=server.password,
                           authentik_url=double.base_url, authentik_token=double.token,
                           prometheus_port=free_port())
        ecoctl = [sys.executable, "-m", "ecoctl"]
        subprocess.run([*ecoctl, "apply", "--yes"], cwd=root, check=True, capture_output=True)
        script = work / "minimal.py"
        script.write_text(MINIMAL)
        ecoctl_times, minimal_times = [], []
        minimal = [sys.executable, str(script), server.conninfo(), double.base_url, double.token]
        timed([*ecoctl, "add-service", "warm", "--port", "9099"], root)  # compiles the bytecode, untimed
        timed([minimal[0], minimal[1], "warmup", *minimal[2:], secrets.token_urlsafe(24)])
        for index in range(ROUNDS):
            ecoctl_times.append(timed([*ecoctl, "add-service", f"svc{index}", "--port", str(9100 + index)], root))
            minimal_times.append(timed([minimal[0], minimal[1], f"min{index}", *minimal[2:],
                                        secrets.token_urlsafe(24)]))
        # each round runs both back to back: the median of the per-round ratios is robust against the
        # machine's drift (fsync times of CREATE DATABASE vary a lot), the medians alone are shown too
        ratios = [e[0] / m[0] for e, m in zip(ecoctl_times, minimal_times)]
        cpu_ratios = [e[1] / m[1] for e, m in zip(ecoctl_times, minimal_times)]
        e = statistics.median(wall for wall, _cpu in ecoctl_times)
        m = statistics.median(wall for wall, _cpu in minimal_times)
        print(f"median of {ROUNDS} rounds, each a fresh process of each (bytecode compiled)")
        print(f"ecoctl add-service (render, compose, db+role+grants, OIDC app, scrape job, dashboard): {e * 1000:7.0f} ms")
        print(f"minimal script (same SQL + HTTP calls, nothing else):                              {m * 1000:7.0f} ms")
        print(f"CPU of the process, ratio ecoctl / minimal: {statistics.median(cpu_ratios):.2f}x")
        print(f"wall, ratio ecoctl / minimal (median of the rounds' ratios): {statistics.median(ratios):.2f}x "
              "(target: within 1.3x)")
    finally:
        double.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
