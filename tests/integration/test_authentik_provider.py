"""The Authentik provider's finer points, against the test double."""

from __future__ import annotations

import threading

from ecoctl.clients.authentik import wait_for_authentik
from ecoctl.workspace import Workspace
from tests.authentik_fixtures import (Target, authentik_double, authentik_double_server,  # noqa: F401
                                      provider_for, write_workspace)
from tests.integration.test_authentik_scenarios import make, plan, provision


def test_create_whose_answer_was_lost_is_adopted_on_retry(tmp_path, authentik_double):
    target = Target(authentik_double.base_url, authentik_double.token, double=authentik_double)
    workspace, loyalty, orders = make(tmp_path, target)
    provider = provider_for(workspace)
    changes = provider.plan()
    authentik_double.fail_next(1, processed=True)  # created, but the 201 never arrives

    provider.apply(changes[0])
    provider.close()

    posts = authentik_double.api_calls("POST", "/api/v3/providers/oauth2/")
    assert [r.status for r in posts] == [502, 400]
    created = authentik_double.provider(loyalty)
    assert Workspace(workspace.root).env.get("LOYALTY_OIDC_CLIENT_SECRET") == created["client_secret"]
    assert plan(workspace.root)[0] == f"+ create application {loyalty} (bound to {workspace.ecosystem.name}/{loyalty}-provider)"


def test_admin_additions_are_kept(tmp_path, authentik_double):
    """Extra scope mappings and logout-type redirect URIs an admin added survive a redirect change."""
    target = Target(authentik_double.base_url, authentik_double.token, double=authentik_double)
    workspace, loyalty, _ = make(tmp_path, target)
    provision(workspace)
    stored = authentik_double.provider(loyalty)
    offline = next(pk for pk, m in authentik_double.state.scope_mappings.items() if m["scope_name"] == "offline_access")
    stored["property_mappings"].append(offline)
    stored["redirect_uris"].append({"matching_mode": "strict", "url": "http://localhost:8001/bye",
                                    "redirect_uri_type": "logout"})
    assert plan(workspace.root) == []

    workspace.ecosystem_file.update(lambda doc: doc["services"][loyalty].__setitem__("redirect_uris", ["http://x/cb"]))
    provision(Workspace(workspace.root))

    stored = authentik_double.provider(loyalty)
    assert offline in stored["property_mappings"]
    assert [u["url"] for u in stored["redirect_uris"]] == ["http://x/cb", "http://localhost:8001/bye"]


def test_drifted_settings_are_patched_field_by_field(tmp_path, authentik_double):
    target = Target(authentik_double.base_url, authentik_double.token, double=authentik_double)
    workspace, loyalty, _ = make(tmp_path, target)
    provision(workspace)
    stored = authentik_double.provider(loyalty)
    stored["client_type"] = "public"
    stored["property_mappings"] = stored["property_mappings"][:1]

    assert plan(workspace.root) == [f"~ update oauth2 provider {workspace.ecosystem.name}/{loyalty}-provider "
                                    "(client_type; scope mappings openid/email/profile)"]
    provision(Workspace(workspace.root))
    patch = authentik_double.writes()[-1]
    assert patch.method == "PATCH" and set(patch.body) == {"client_type", "property_mappings"}
    assert plan(workspace.root) == []


def test_a_client_secret_changed_in_authentik_is_set_back_to_env(tmp_path, authentik_double):
    target = Target(authentik_double.base_url, authentik_double.token, double=authentik_double)
    workspace, loyalty, _ = make(tmp_path, target)
    provision(workspace)
    with target.api() as api:
        pk = target.provider(loyalty)["pk"]
        assert api.patch(f"/providers/oauth2/{pk}/", json={"client_secret": "changed-by-hand"}).status_code == 200

    assert plan(workspace.root) == [f"~ update oauth2 provider {workspace.ecosystem.name}/{loyalty}-provider "
                                    "(client_secret differs from .env LOYALTY_OIDC_CLIENT_SECRET)"]
    provision(Workspace(workspace.root))
    assert Workspace(workspace.root).env.get("LOYALTY_OIDC_CLIENT_SECRET") == \
        authentik_double.provider(loyalty)["client_secret"]


def test_not_ready_is_pending_in_a_plan(tmp_path, authentik_double):
    authentik_double.defaults_ready = False
    workspace = write_workspace(tmp_path, authentik_double.base_url, authentik_double.token, {"loyalty": {"port": 8001}})
    from ecoctl.plan import make_plan

    result = make_plan([provider_for(workspace)])
    assert result.changes == []
    assert result.pending["authentik"].startswith(f"Authentik at {authentik_double.base_url} is not ready: missing "
                                                  "flow default-provider-authorization-implicit-consent")


def test_wait_for_authentik_reads_the_workspace(tmp_path, authentik_double):
    authentik_double.defaults_ready = False
    workspace = write_workspace(tmp_path, authentik_double.base_url, authentik_double.token, {"loyalty": {"port": 8001}})
    timer = threading.Timer(0.3, setattr, (authentik_double, "defaults_ready", True))
    timer.start()
    seen = []
    defaults = wait_for_authentik(workspace, timeout=20, on_progress=lambda missing, elapsed: seen.append(missing),
                                  interval=0.1)
    timer.join()
    assert seen[-1] == [] and len(defaults.scope_mappings) == 3


def test_an_apply_of_30_services_lists_each_collection_once(tmp_path, authentik_double):
    """The plan that is shown is the plan applied: Authentik is read once, not again per write."""
    from ecoctl.commands.reconcile import Reconciliation

    services = {f"svc{index:02d}": {"port": 9100 + index} for index in range(30)}
    workspace = write_workspace(tmp_path / "eco", authentik_double.base_url, authentik_double.token, services)
    before = len(authentik_double.api_calls())
    with Reconciliation(workspace, only={"authentik"}) as reconciliation:
        shown = reconciliation.make_plan()
        done = reconciliation.apply()
    assert [str(change) for change in done.changes] == [str(change) for change in shown.changes]
    assert len(done.changes) == 60
    calls = authentik_double.api_calls()[before:]
    reads = [(call.path, call.query) for call in calls if call.method == "GET"]
    assert len(reads) == len(set(reads)), sorted(reads)  # every list and lookup once
    assert sum(1 for call in calls if call.method == "POST") == 60
