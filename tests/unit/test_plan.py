"""plan.py with a provider of this file (no system behind it): appliers are the methods
themselves, notices and conflicts are the provider's declared answers, and a failed apply is an
`ApplyFailed` naming what did not land, exiting as its cause does."""

from __future__ import annotations

import pytest

from ecoctl.errors import ApplyFailed, ChangeFailed, EcoctlError, Unreachable, UsageError
from ecoctl.plan import Change, Provider, apply_plan, make_plan


class Write:
    def __init__(self, name: str, error: EcoctlError | None = None):
        self.name, self.error = name, error


class Unknown:
    pass


class Notes(Provider):
    """A system of named notes: DESIRED in, ACTUAL out; applying a Write records its name."""

    name = "notes"

    def __init__(self, workspace, desired: dict, actual: set[str] | Exception):
        super().__init__(workspace)
        self._desired, self._actual, self.written = desired, actual, []

    def desired(self) -> dict:
        return self._desired

    def read(self) -> set[str]:
        if isinstance(self._actual, Exception):
            raise self._actual
        return self._actual

    def diff(self, desired: dict, actual: set[str]) -> list[Change]:
        return [self.conflict("note", name, "not ours", f"note {name} is someone else's", None)
                if payload == "theirs" else Change(self.name, "create", "note", name, payload=payload)
                for name, payload in desired.items() if name not in actual]

    def notices(self, desired: dict, actual: set[str]) -> list[str]:
        return [f"{name} is also there" for name in sorted(actual - set(desired))]

    def write(self, payload: Write) -> None:
        if payload.error is not None:
            raise payload.error
        self.written.append(payload.name)

    appliers = {Write: write}


@pytest.fixture
def workspace(tmp_path):
    from ecoctl.commands.init import init_ecosystem
    from ecoctl.workspace import Workspace

    init_ecosystem(tmp_path / "eco", runtime="local", without=("web",))
    return Workspace(tmp_path / "eco")


def test_a_plan_holds_the_changes_and_the_notices_and_diff_changes_nothing(workspace):
    provider = Notes(workspace, {"a": Write("a"), "b": Write("b")}, {"b", "c"})
    plan = make_plan([provider])
    assert [change.name for change in plan.changes] == ["a"] and plan.notices == ["c is also there"]
    assert make_plan([provider]).to_json() == plan.to_json()  # planning twice: the same plan
    assert apply_plan([provider], plan).changes == plan.changes and provider.written == ["a"]


def test_a_system_that_does_not_answer_is_pending(workspace):
    plan = make_plan([Notes(workspace, {"a": Write("a")}, Unreachable("notes do not answer"))])
    assert plan.changes == [] and plan.pending == {"notes": "notes do not answer"} and plan.notices == []


@pytest.mark.parametrize("error, exit_code", [(EcoctlError("disk full"), 1), (UsageError("bad value"), 2),
                                              (Unreachable("gone"), 1)])
def test_a_failed_apply_names_what_did_not_land(workspace, error, exit_code):
    provider = Notes(workspace, {"a": Write("a"), "b": Write("b", error), "c": Write("c")}, set())
    plan = make_plan([provider])
    with pytest.raises(ApplyFailed) as caught:
        apply_plan([provider], plan)
    failed = caught.value
    assert failed.cause is error and failed.__cause__ is error and failed.exit_code == exit_code
    assert failed.not_applied == plan.changes[1:] and failed.applied == 1 and provider.written == ["a"]
    assert str(failed) == f"{error} (not applied: create note b and 1 more; 1 applied)"


class SideBySide(Notes):
    """Applies its changes in its own order (last first, as concurrent appliers may land them) and
    names the one that failed, as `apply_all` of a provider applying changes side by side does."""

    def apply_all(self, changes, on_change):
        for change in reversed(changes):
            try:
                self.apply(change)
            except EcoctlError as exc:
                raise ChangeFailed(change, exc) from exc
            on_change(change)


def test_side_by_side_the_failed_change_is_named_first_and_what_landed_is_in_plan_order(workspace):
    error = UsageError("bad value")
    provider = SideBySide(workspace, {"a": Write("a"), "b": Write("b", error), "c": Write("c"), "d": Write("d")},
                          set())
    plan = make_plan([provider])
    heard = []
    with pytest.raises(ApplyFailed) as caught:
        apply_plan([provider], plan, heard.append)
    failed = caught.value
    assert failed.cause is error and failed.__cause__ is error and failed.exit_code == 2
    assert [change.name for change in failed.not_applied] == ["b", "a"] and failed.applied == 2
    assert str(failed) == "bad value (not applied: create note b and 1 more; 2 applied)"
    assert [change.name for change in heard] == ["d", "c"]

    provider = SideBySide(workspace, {"a": Write("a"), "b": Write("b")}, set())
    plan = make_plan([provider])
    assert apply_plan([provider], plan).changes == plan.changes  # in plan order, not landing order


def test_a_conflict_refuses_the_plan_before_anything_is_applied(workspace):
    provider = Notes(workspace, {"a": Write("a"), "b": "theirs"}, set())
    plan = make_plan([provider])
    assert [str(change) for change in plan.changes] == ["+ create note a", "! conflict note b (not ours)"]
    with pytest.raises(EcoctlError, match="^note b is someone else's$"):
        apply_plan([provider], plan)
    assert provider.written == []


def test_a_payload_without_an_applier_is_a_bug_said_plainly(workspace):
    provider = Notes(workspace, {"a": Unknown()}, set())
    with pytest.raises(TypeError, match="notes provider cannot apply \\+ create note a \\(Unknown\\)"):
        apply_plan([provider], make_plan([provider]))
