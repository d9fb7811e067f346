"""The promtool check of prometheus.yml starts in `prepare` (before the plan's first change is
applied) and runs while the other systems apply: its verdict counts only for the exact text
written, a refusal reads as before, and nothing is left behind (no candidate file, no promtool)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ecoctl.clients import prometheus_config
from ecoctl.clients.prometheus_config import PrometheusConfig
from ecoctl.commands.reconcile import Reconciliation
from ecoctl.errors import EcoctlError
from ecoctl.plan import apply_plan, make_plan
from ecoctl.providers import load_providers
from ecoctl.providers.prometheus import PrometheusProvider
from tests.helpers import ensure_secrets
from tests.unit.test_batched_apply import ecosystem
from tests.unit.test_prometheus_config import HAND_WRITTEN, PORTFOLIO, config_path, make_workspace

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None,
                                reason="promtool not on PATH (apt-get install prometheus)")

BROKEN = HAND_WRITTEN.replace("scrape_interval: 15s   # default", "scrape_interval: 15x   # default")
SERVICES = {"portfolio": PORTFOLIO, "loyalty": {"port": 8080}}


@pytest.fixture
def calls(monkeypatch) -> dict[str, list]:
    """The real promtool runs; this only records which checks were started and which were run
    synchronously (`check_config`)."""
    seen: dict[str, list] = {"started": [], "synchronous": []}
    start_check, check_config = prometheus_config.start_check, prometheus_config.check_config

    def recording_start(path, text):
        check = start_check(path, text)
        seen["started"].append(check)
        return check

    def recording_check(path, text):
        seen["synchronous"].append(text)
        return check_config(path, text)

    monkeypatch.setattr(prometheus_config, "start_check", recording_start)
    monkeypatch.setattr(prometheus_config, "check_config", recording_check)
    return seen


def assert_nothing_left(check: prometheus_config.Check, directory: Path) -> None:
    assert check.process.returncode is not None  # reaped: not running, not a zombie
    with pytest.raises(ChildProcessError):
        os.waitpid(check.process.pid, os.WNOHANG)  # no child of ours by that PID any more
    assert not Path(check.candidate).exists()
    assert [path.name for path in directory.iterdir() if path.name != "rules"] == ["prometheus.yml"]
    rules = directory / "rules"
    assert all(path.suffix == ".yml" and not path.name.startswith(".") for path in rules.glob("*")) or not rules.exists()


def test_a_refusal_found_in_the_background_writes_nothing_and_says_so_as_before(tmp_path, calls):
    ws = make_workspace(tmp_path, SERVICES, prometheus_text=BROKEN)
    path = config_path(ws)
    stat = path.stat()
    provider = PrometheusProvider(ws)
    changes = make_plan([provider]).changes
    provider.prepare(changes)
    [check] = calls["started"]
    assert Path(check.candidate).parent == path.parent and Path(check.candidate).read_text() != BROKEN

    reported = []
    with pytest.raises(EcoctlError) as caught:
        provider.apply_all(changes, reported.append)
    provider.close()
    background = str(caught.value)
    assert calls["synchronous"] == [] and reported == []
    assert "promtool" in background and '"15x"' in background and str(path) in background
    assert "\n" not in background and ".check-" not in background
    assert path.read_text() == BROKEN and path.stat().st_ino == stat.st_ino
    assert_nothing_left(check, path.parent)

    # the same plan checked synchronously (today's path, no prepare): the very same words
    calls["started"].clear()
    fresh = PrometheusProvider(ws)
    with pytest.raises(EcoctlError) as caught:
        fresh.apply_all(make_plan([fresh]).changes, reported.append)
    assert str(caught.value) == background and len(calls["synchronous"]) == 1
    assert_nothing_left(calls["started"][0], path.parent)


def test_through_apply_plan_the_check_starts_before_the_first_change_lands(tmp_path, calls):
    ws = ecosystem(tmp_path / "eco", 2)
    ensure_secrets(ws)
    apply_plan(load_providers(ws, ("files",)), make_plan(load_providers(ws, ("files",))))
    path = config_path(ws)
    path.write_text(path.read_text().replace("scrape_interval: 15s", "scrape_interval: 15x", 1))
    broken = path.read_text()

    providers = load_providers(ws, ("compose", "prometheus"))
    plan = make_plan(providers)
    started_when = []
    with pytest.raises(EcoctlError) as caught:
        apply_plan(providers, plan, on_change=lambda change: started_when.append(len(calls["started"])))
    assert started_when and set(started_when) == {1}  # started before compose's first change landed
    assert calls["synchronous"] == []
    assert caught.value.not_applied == [change for change in plan.changes if change.system == "prometheus"]
    assert "promtool check config fails" in str(caught.value) and path.read_text() == broken
    assert_nothing_left(calls["started"][0], path.parent)


def test_an_unchanged_file_uses_the_prepared_verdict(tmp_path, calls):
    ws = make_workspace(tmp_path, SERVICES)
    provider = PrometheusProvider(ws)
    changes = make_plan([provider]).changes
    provider.prepare(changes)
    reported = []
    provider.apply_all(changes, reported.append)
    provider.close()
    assert reported == changes and calls["synchronous"] == []
    [check] = calls["started"]
    assert config_path(ws).read_text() == check.text and "loyalty:8080" in check.text
    assert_nothing_left(check, config_path(ws).parent)


@pytest.mark.parametrize("edit", ["breaks it", "adds a comment"])
def test_a_file_changed_after_prepare_is_checked_again(tmp_path, calls, edit):
    ws = make_workspace(tmp_path, SERVICES)
    path = config_path(ws)
    provider = PrometheusProvider(ws)
    changes = make_plan([provider]).changes
    provider.prepare(changes)
    [check] = calls["started"]
    edited = BROKEN if edit == "breaks it" else HAND_WRITTEN + "# a note the user added meanwhile\n"
    path.write_text(edited)  # the user edits the file while postgres and authentik apply

    reported = []
    if edit == "breaks it":  # the prepared check passed the old text: it must not count
        with pytest.raises(EcoctlError, match='promtool check config fails.*"15x"'):
            provider.apply_all(changes, reported.append)
        assert path.read_text() == edited and reported == []
    else:
        provider.apply_all(changes, reported.append)
        written = path.read_text()
        assert reported == changes
        assert written.replace(PrometheusConfig(written).job_text("loyalty"), "") == edited
    provider.close()
    assert len(calls["synchronous"]) == 1 and calls["synchronous"][0] != check.text
    assert_nothing_left(check, path.parent)
    assert_nothing_left(calls["started"][1], path.parent)


def test_a_provider_closed_without_applying_leaves_nothing(tmp_path, calls):
    ws = make_workspace(tmp_path, SERVICES)
    path = config_path(ws)
    provider = PrometheusProvider(ws)
    provider.prepare(make_plan([provider]).changes)
    [check] = calls["started"]
    assert Path(check.candidate).exists()
    stat = Path(f"/proc/{check.process.pid}/stat").read_text()
    assert stat.rsplit(")", 1)[1].split()[1] == str(os.getpid())  # our child (running, or exited unreaped)
    provider.close()
    provider.close()  # twice: nothing more to do
    assert_nothing_left(check, path.parent)
    assert path.read_text() == HAND_WRITTEN


def test_an_earlier_system_failing_leaves_no_check_behind(tmp_path, calls):
    ws = ecosystem(tmp_path / "eco", 2)
    ensure_secrets(ws)
    apply_plan(load_providers(ws, ("files",)), make_plan(load_providers(ws, ("files",))))
    path = config_path(ws)
    before = path.read_text()
    with Reconciliation(ws, only=("compose", "prometheus")) as reconciliation:
        plan = reconciliation.make_plan()
        assert {change.system for change in plan.changes} == {"compose", "prometheus"}
        (ws.root / "compose.yaml").unlink()
        (ws.root / "compose.yaml").mkdir()  # compose's write fails, before prometheus applies
        with pytest.raises(OSError):
            reconciliation.apply()
        assert len(list(path.parent.iterdir())) == 2  # prometheus.yml and the candidate, until close
    [check] = calls["started"]
    assert calls["synchronous"] == []
    assert_nothing_left(check, path.parent)
    assert path.read_text() == before


def test_no_promtool_checks_nothing_as_before(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    ws = make_workspace(tmp_path, SERVICES, prometheus_text=BROKEN)
    provider = PrometheusProvider(ws)
    changes = make_plan([provider]).changes
    provider.prepare(changes)
    provider.apply_all(changes, lambda change: None)
    provider.close()
    assert "loyalty:8080" in config_path(ws).read_text()
    assert sorted(path.name for path in config_path(ws).parent.iterdir()) == ["prometheus.yml", "rules"]
    assert sorted(path.name for path in (config_path(ws).parent / "rules").iterdir()) == ["loyalty.yml", "portfolio.yml"]
