"""Names of the local runtime's per-program system users (see ecoctl.runtimes.local.program_users):
valid Linux user names, at most 32 characters, stable, and distinct for distinct programs."""

from __future__ import annotations

import re

from ecoctl import components
from ecoctl.runtimes.local.program_users import comment, ecosystem_id, user_name

LINUX_NAME = re.compile(r"[a-z_][a-z0-9_-]*")


def test_names_are_valid_stable_and_distinct():
    ecosystem = ecosystem_id("/srv/teams/demo")
    programs = [component.name for component in components.CATALOG] + [
        "portfolio", "loyalty-points", "a" * 17, "a" * 18, "a" * 40, "a" * 39 + "b",
        "abcdefghijk-" + "0" * 6, "x-" * 20 + "y", "web"]
    names = [user_name(ecosystem, program) for program in programs]
    assert all(LINUX_NAME.fullmatch(name) and len(name) <= 32 for name in names), names
    assert len(set(names)) == len(programs), names
    assert names == [user_name(ecosystem_id("/srv/teams/demo"), program) for program in programs]
    assert user_name(ecosystem, "postgres") == f"ecoctl-{ecosystem[:6]}-postgres"  # readable when it fits


def test_two_ecosystems_give_two_users_and_the_mark_names_both():
    one, two = ecosystem_id("/srv/one"), ecosystem_id("/srv/two")
    assert user_name(one, "portfolio") != user_name(two, "portfolio")
    assert comment(one, "portfolio") == f"ecoctl program portfolio of {one}" and len(one) == 16
