"""Authentik changes applied side by side (`core.authentik.concurrency`), against the test double
with a little latency so that calls overlap: the same end state as one at a time, a service's
provider before its application, a failure reported truthfully, lost answers adopted."""

from __future__ import annotations

import pytest

from ecoctl.errors import ApplyFailed
from ecoctl.plan import apply_plan, make_plan
from ecoctl.workspace import Workspace
from tests.authentik_double import Latency
from tests.authentik_fixtures import authentik_double, authentik_double_server, provider_for, write_workspace  # noqa: F401
from tests.integration.test_authentik_scenarios import plan as planned_changes

OVERLAP = Latency(write=0.01, read=0.002)
"""Enough for calls to be in flight together (no test asserts a time)."""


def services(count: int, first: int = 0) -> dict[str, dict]:
    return {f"svc{index:02d}": {"port": 9100 + index} for index in range(first, first + count)}


def set_concurrency(root, concurrency: int) -> None:
    Workspace(root).ecosystem_file.update(lambda doc: doc["core"]["authentik"].__setitem__("concurrency", concurrency))


def converge(root, on_change=None):
    """One plan of a fresh provider, applied (as `ecoctl apply --only authentik` does)."""
    provider = provider_for(Workspace(root))
    try:
        plan = make_plan([provider])
        return plan, apply_plan([provider], plan, on_change)
    finally:
        provider.close()


def end_state(double) -> dict:
    """What Authentik holds, each reference by name: pks depend on creation order and on the boot."""
    state = double.state
    names = {**{pk: flow["slug"] for pk, flow in state.flows.items()},
             **{pk: cert["name"] for pk, cert in state.certificates.items()},
             **{pk: mapping["managed"] for pk, mapping in state.scope_mappings.items()}}

    def named(value):
        if isinstance(value, list):
            return [named(item) for item in value]
        return names.get(value, value) if isinstance(value, str) else value

    client_ids = {pk: provider["client_id"] for pk, provider in state.providers.items()}
    providers = {p["client_id"]: {k: named(v) for k, v in p.items() if k != "pk"} for p in state.providers.values()}
    applications = {slug: {k: (client_ids.get(v) if k == "provider" else v) for k, v in app.items()
                           if k not in ("pk", "pbm_uuid")} for slug, app in state.applications.items()}
    return {"providers": providers, "applications": applications}


def edit_services(root) -> None:
    """Ten services removed, ten with a new redirect URI, ten new ones."""
    def mutate(doc):
        for index in range(10):
            del doc["services"][f"svc{index:02d}"]
        for index in range(10, 20):
            doc["services"][f"svc{index:02d}"]["redirect_uris"] = [f"http://svc{index}.example.test/cb"]
        doc["services"].update(services(10, first=40))
    Workspace(root).ecosystem_file.update(mutate)


def run_scenario(double, root, concurrency: int) -> tuple[dict, dict, int]:
    """(state after 32 creates, state after removes/updates/creates, the most calls in flight at once)."""
    double.reset()
    double.latency = OVERLAP
    set_concurrency(root, concurrency)
    converge(root)
    first = end_state(double)
    edit_services(root)
    _, done = converge(root)
    assert {change.action for change in done.changes} == {"create", "update", "delete"}
    assert planned_changes(root) == []
    return first, end_state(double), double.peak_in_flight


def test_side_by_side_ends_where_one_at_a_time_ends(tmp_path, authentik_double):
    root = write_workspace(tmp_path / "eco", authentik_double.base_url, authentik_double.token, services(32)).root
    original = (root / "ecosystem.yaml").read_text()
    first_alone, second_alone, peak_alone = run_scenario(authentik_double, root, 1)
    (root / "ecosystem.yaml").write_text(original)  # the same .env, so the same client secrets
    first, second, peak = run_scenario(authentik_double, root, 8)

    assert peak_alone == 1 and 1 < peak <= 8
    assert first == first_alone and len(first["providers"]) == len(first["applications"]) == 32
    assert second == second_alone and sorted(second["applications"]) == [
        f"svc{index:02d}" for index in (*range(10, 32), *range(40, 50))]


def test_a_provider_is_answered_before_its_application_is_sent(tmp_path, authentik_double):
    authentik_double.latency = OVERLAP
    root = write_workspace(tmp_path / "eco", authentik_double.base_url, authentik_double.token, services(32)).root
    converge(root)
    slug_of_pk = {str(pk): provider["client_id"] for pk, provider in authentik_double.state.providers.items()}
    edit_services(root)
    converge(root)

    def calls(method: str, collection: str) -> dict[str, object]:
        found = {}
        for call in authentik_double.api_calls(method, collection):
            if method == "POST":
                found[call.body.get("client_id") or call.body["slug"]] = call
            else:
                key = call.path.rstrip("/").rsplit("/", 1)[1]
                found[slug_of_pk.get(key, key) if "providers" in collection else key] = call
        return found

    providers, applications = calls("POST", "/api/v3/providers/oauth2/"), calls("POST", "/api/v3/core/applications/")
    assert len(providers) == len(applications) == 42
    assert all(applications[slug].arrived > providers[slug].answered for slug in providers)
    assert authentik_double.peak_in_flight > 1
    deleted_apps = calls("DELETE", "/api/v3/core/applications/")
    deleted_providers = calls("DELETE", "/api/v3/providers/oauth2/")
    assert sorted(deleted_apps) == sorted(deleted_providers) == [f"svc{index:02d}" for index in range(10)]
    assert all(deleted_providers[slug].arrived > deleted_apps[slug].answered for slug in deleted_apps)


def test_a_failure_mid_batch_names_the_rest_and_the_next_apply_converges(tmp_path, authentik_double):
    authentik_double.latency = OVERLAP
    root = write_workspace(tmp_path / "eco", authentik_double.base_url, authentik_double.token, services(30)).root
    set_concurrency(root, 4)
    provider = provider_for(Workspace(root))
    plan = make_plan([provider])
    with authentik_double._lock:  # someone makes svc12's application after the plan was shown
        authentik_double._create_application({"name": "by hand", "slug": "svc12"})
    landed = []
    with pytest.raises(ApplyFailed) as caught:
        apply_plan([provider], plan, landed.append)
    provider.close()

    failed = caught.value
    assert failed.exit_code == 1 and "made since the plan by someone else" in str(failed)
    assert str(failed.not_applied[0]) == "+ create application svc12 (bound to demo/svc12-provider)"
    assert failed.applied == len(landed) and sorted(map(id, landed + failed.not_applied)) == sorted(map(id, plan.changes))
    assert {"+ create application svc29 (bound to demo/svc29-provider)"} <= set(map(str, failed.not_applied))
    # what is reported is what Authentik holds: every call answered, nothing more made
    assert all(call.answered for call in authentik_double.requests)
    made = {f"provider {p['client_id']}" for p in authentik_double.state.providers.values()}
    made |= {f"application {slug}" for slug, app in authentik_double.state.applications.items() if app["provider"]}
    assert made == {f"{'provider' if 'provider' in c.kind else 'application'} {c.service}" for c in landed}

    with authentik_double._lock:
        del authentik_double.state.applications["svc12"]
    converge(root)
    assert planned_changes(root) == [] and len(authentik_double.state.applications) == 30


def test_answers_lost_under_load_are_adopted(tmp_path, authentik_double):
    authentik_double.latency = OVERLAP
    root = write_workspace(tmp_path / "eco", authentik_double.base_url, authentik_double.token, services(24)).root
    provider = provider_for(Workspace(root))
    plan = make_plan([provider])
    authentik_double.fail_next(3, processed=True)  # carried out, but the answers never arrive
    done = apply_plan([provider], plan)
    provider.close()

    assert done.changes == plan.changes
    assert [call.status for call in authentik_double.requests].count(502) == 3
    assert planned_changes(root) == [] and len(authentik_double.state.applications) == 24
    assert all(app["provider"] for app in authentik_double.state.applications.values())
