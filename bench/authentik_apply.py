"""`apply --only authentik` of N services (a provider and an application each: 2N creates) against the
Authentik test double with a real Authentik's measured latency injected, one change at a time (the
baseline, `core.authentik.concurrency: 1`) and with changes in flight side by side, in the same run.

    python bench/authentik_apply.py [services] [concurrency]     # default: 31 8

With ECOCTL_TEST_AUTHENTIK_URL and ECOCTL_TEST_AUTHENTIK_TOKEN set (as for the tests), the same two
applies also run against that Authentik, under a random prefix, and are removed again.

A real Authentik 2025.12.4 took 26.9 s for 31 services (62 creates, 69 requests; issue #29), about
370 ms per create. The double sleeps `tests.authentik_double.MEASURED` per call (370 ms a write,
200 ms a read). How many calls a real Authentik works on at once depends on its web workers, so the
concurrent run is also shown against a double that works on at most 4 or 2 calls at once.
"""

from __future__ import annotations

from usage import answer_help  # bench/ is on sys.path: `python bench/NAME.py`

answer_help(__doc__)

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ecoctl.commands.reconcile import Reconciliation  # noqa: E402
from tests.authentik_double import MEASURED, AuthentikDouble, Latency  # noqa: E402
from ecoctl.workspace import Workspace  # noqa: E402
from tests.authentik_fixtures import write_workspace  # noqa: E402

SERVICES = int(sys.argv[1]) if len(sys.argv) > 1 else 31
CONCURRENCY = int(sys.argv[2]) if len(sys.argv) > 2 else 8
TARGET = 8.0
REAL_BEFORE = 26.9
REAL_URL = os.environ.get("ECOCTL_TEST_AUTHENTIK_URL", "").rstrip("/")
REAL_TOKEN = os.environ.get("ECOCTL_TEST_AUTHENTIK_TOKEN", "")


def timed_apply(root: Path, base_url: str, token: str, concurrency: int, prefix: str = "") -> tuple[float, float, int]:
    """(plan seconds, plan + apply seconds, changes) of a first apply of SERVICES services."""
    services = {f"svc{index:02d}": {"port": 9100 + index} for index in range(SERVICES)}
    workspace = write_workspace(root, base_url, token, services, name=f"{prefix or 'bench-'}eco")

    def settings(doc) -> None:
        doc["core"]["authentik"].update({"concurrency": concurrency, "prefix": prefix})

    workspace.ecosystem_file.update(settings)
    start = time.perf_counter()
    with Reconciliation(Workspace(root), only={"authentik"}) as reconciliation:
        reconciliation.make_plan()
        planned = time.perf_counter() - start
        done = reconciliation.apply()
    return planned, time.perf_counter() - start, len(done.changes)


def on_double(work: Path, latency: Latency, capacity: int | None, concurrency: int) -> tuple[float, float, int, int]:
    """(plan seconds, plan + apply seconds, changes, requests) on a freshly booted double."""
    with AuthentikDouble(page_size=100, latency=latency, capacity=capacity) as double:
        root = work / f"eco-{latency.write}-{capacity}-{concurrency}"
        planned, total, changes = timed_apply(root, double.base_url, double.token, concurrency)
        assert double.peak_in_flight <= concurrency
        return planned, total, changes, len(double.api_calls())


def on_real(work: Path, concurrency: int) -> tuple[float, float, int, str]:
    """The same against the Authentik ECOCTL_TEST_AUTHENTIK_URL names, under a random prefix; what
    it made is removed again by an apply without the services."""
    import secrets

    root = work / f"real-{concurrency}"
    prefix = f"b{secrets.token_hex(3)}-"
    planned, total, changes = timed_apply(root, REAL_URL, REAL_TOKEN, concurrency, prefix)
    Workspace(root).ecosystem_file.update(lambda doc: doc["services"].clear())
    with Reconciliation(Workspace(root), only={"authentik"}) as reconciliation:
        reconciliation.apply()
    return planned, total, changes, "-"


def main() -> None:
    runs = [("none", Latency(), None, 1), ("none", Latency(), None, CONCURRENCY),
            ("measured", MEASURED, None, 1), ("measured", MEASURED, None, CONCURRENCY),
            ("measured, 4 at once", MEASURED, 4, CONCURRENCY), ("measured, 2 at once", MEASURED, 2, CONCURRENCY)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ecoctl-bench-") as work:
        for label, latency, capacity, concurrency in runs:
            rows.append((label, concurrency, *on_double(Path(work), latency, capacity, concurrency)))
        if REAL_URL and REAL_TOKEN:
            for concurrency in (1, CONCURRENCY):
                rows.append(("a real Authentik", concurrency, *on_real(Path(work), concurrency)))
    print(f"apply --only authentik, {SERVICES} services, against the double (and a real Authentik when "
          "ECOCTL_TEST_AUTHENTIK_URL/_TOKEN are set)")
    print(f"{'latency (server)':<22} {'in flight':>9} {'changes':>7} {'requests':>8} {'plan':>7} {'plan+apply':>10}")
    for label, concurrency, planned, total, changes, requests in rows:
        print(f"{label:<22} {concurrency:>9} {changes:>7} {requests:>8} {planned:>5.2f} s {total:>8.2f} s")
    baseline = next(row for row in rows if row[0] == "measured" and row[1] == 1)[3]
    after = next(row for row in rows if row[0] == "measured" and row[1] == CONCURRENCY)[3]
    print(f"measured latency: one at a time {baseline:.1f} s (a real Authentik before: {REAL_BEFORE} s), "
          f"{CONCURRENCY} in flight {after:.1f} s ({baseline / after:.1f}x); "
          f"{'meets' if after <= TARGET else 'misses'} the {TARGET:.0f} s target")


if __name__ == "__main__":
    main()
