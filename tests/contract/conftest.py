"""The contract suite's shared fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def commands(tmp_path_factory):
    """Each subject's start command, built (rendered, installed) at most once per session."""
    built = {}

    def command(subject):
        if subject.name not in built:
            built[subject.name] = subject.start(tmp_path_factory.mktemp(f"contract-{subject.name}"))
        return built[subject.name]

    return command
