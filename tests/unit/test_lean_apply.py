"""What add-service does not do any more (issue 17): render the core files when they are all there,
or parse compose.yaml round-trip to add new services (their text is inserted; the batched-apply
test checks it is the file the round-trip edit writes)."""

from __future__ import annotations

import pytest

from ecoctl.plan import apply_plan, make_plan
from ecoctl.providers import compose, files, load_providers
from ecoctl.workspace import Workspace
from tests.helpers import ensure_secrets
from tests.unit.test_batched_apply import ecosystem


def refuse(*args, **kwargs):
    raise AssertionError("not expected on this path")


def test_core_files_are_rendered_only_when_one_is_missing(tmp_path, monkeypatch):
    ws = ecosystem(tmp_path / "eco", 1)
    ensure_secrets(ws)
    apply_plan(load_providers(ws, ("files",)), make_plan(load_providers(ws, ("files",))))
    monkeypatch.setattr(files, "render_core_files", refuse)
    assert make_plan(load_providers(Workspace(ws.root), ("files",))).changes == []

    monkeypatch.undo()
    (ws.root / "monitoring/prometheus/prometheus.yml").unlink()
    changes = make_plan(load_providers(Workspace(ws.root), ("files",))).changes
    assert [change.name for change in changes] == ["monitoring/prometheus/prometheus.yml"]


def test_new_compose_services_are_added_without_a_roundtrip_parse(tmp_path, monkeypatch):
    ws = ecosystem(tmp_path / "eco", 0)
    ensure_secrets(ws)
    providers = load_providers(ws, ("compose",))
    apply_plan(providers, make_plan(providers))  # the core fields (prometheus' port): round-trip
    spec = ws.root / "ecosystem.yaml"
    spec.write_text(spec.read_text() + "".join(f"  svc{index}:\n    port: {9100 + index}\n" for index in range(3)))
    ws = Workspace(ws.root)
    ensure_secrets(ws)
    providers = load_providers(ws, ("compose",))
    plan = make_plan(providers)
    assert [(change.action, change.name) for change in plan.changes] == [("create", f"svc{i}") for i in range(3)]
    before = (ws.root / "compose.yaml").read_text()
    monkeypatch.setattr(compose, "parse_yaml", refuse)
    apply_plan(providers, plan)
    text = (ws.root / "compose.yaml").read_text()
    monkeypatch.undo()
    assert text.startswith(before[:before.index("\nnetworks:")])  # all before the insertion stays
    assert text.endswith(before[before.index("\nnetworks:"):])  # and all after it
    for name in ("svc0", "svc1", "svc2"):
        assert f"\n  {name}:\n" in text
    assert make_plan(load_providers(Workspace(ws.root), ("compose",))).changes == []


@pytest.mark.parametrize("edit", ["\n  # a comment of the user's at the end of services\n", "\n\n"])
def test_a_user_edited_compose_file_still_gets_exactly_the_new_entry(tmp_path, edit):
    ws = ecosystem(tmp_path / "eco", 1)
    ensure_secrets(ws)
    apply_plan(load_providers(ws, ("files",)), make_plan(load_providers(ws, ("files",))))
    path = ws.root / "compose.yaml"
    before = path.read_text().replace("\nnetworks:", edit.rstrip("\n") + "\nnetworks:", 1)
    path.write_text(before)
    providers = load_providers(Workspace(ws.root), ("compose",))
    apply_plan(providers, make_plan(providers))
    after = path.read_text()
    assert edit.strip() in after or not edit.strip()
    assert make_plan(load_providers(Workspace(ws.root), ("compose",))).changes == []
