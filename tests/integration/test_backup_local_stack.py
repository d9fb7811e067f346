"""Backups on the running local runtime, through the real CLI: the portfolio service's data made
through its API, backed up, deleted, restored; the service restarted by the runtime (supervisord)
serves the data again. Real supervisord, PostgreSQL, uvicorn."""

from __future__ import annotations

import json

import httpx

from tests.helpers import run_ecoctl
from tests.integration.test_local_e2e import demo  # noqa: F401 (a fixture)


def test_restore_on_the_running_local_stack_restarts_the_service_with_its_data_back(demo):  # noqa: F811
    root, ports = demo
    up = run_ecoctl("up", "--json", cwd=root, timeout=600)
    assert up.returncode == 0, up.stderr[-3000:]
    portfolio = f"http://127.0.0.1:{ports['portfolio']}"
    auth = {"Authorization": "Bearer " + run_ecoctl("token", "portfolio", "--user", "dev", cwd=root).stdout.strip()}
    for name in ("Retirement", "Savings"):
        assert httpx.post(f"{portfolio}/portfolios", json={"name": name, "currency": "EUR"},
                          headers=auth).status_code == 201
    listed = httpx.get(f"{portfolio}/portfolios", headers=auth).json()

    made = run_ecoctl("backup", "portfolio", "--to", str(root.parent / "off-site"), "--keep", "3", cwd=root)
    assert made.returncode == 0, made.stderr
    dump = next((root.parent / "off-site" / "portfolio").glob("portfolio-*.dump"))
    assert f"+ portfolio: {dump} (" in made.stdout and "17 3 * * * cd " in made.stdout
    for item in listed["items"]:
        assert httpx.delete(f"{portfolio}/portfolios/{item['id']}", headers=auth).status_code in (200, 204)
    assert httpx.get(f"{portfolio}/portfolios", headers=auth).json()["total"] == 0

    restored = run_ecoctl("restore", "portfolio", str(dump), "--json", cwd=root, timeout=300)
    assert restored.returncode == 0, restored.stdout + restored.stderr[-3000:]
    result = json.loads(restored.stdout)
    assert result["swapped"] and result["health"] == {"portfolio": "healthy"} and result["kept"] is None
    assert httpx.get(f"{portfolio}/portfolios", headers=auth).json() == listed
    assert run_ecoctl("plan", "--detailed-exitcode", cwd=root).returncode == 0
