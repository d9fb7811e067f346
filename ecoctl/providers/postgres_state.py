"""What the postgres provider keeps in the ecosystem's state folder (`.ecoctl/`, 0600 files): the
password-check cache, and the journal of databases being created.

CREATE DATABASE cannot share a transaction with the COMMENT that marks a database ecoctl's, so a
run killed between the two would leave a database that the next run must refuse as someone
else's. The journal names each database before it is set up and forgets it once that is done; a
database it names that exists unmarked was created by ecoctl, and the next apply marks it.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ecoctl.support.atomic import write_atomic
from ecoctl.support.verified import Verified

if TYPE_CHECKING:
    from ecoctl.clients.postgres import Actual

JOURNAL_FILE = "postgres-creating.json"


class CreateJournal:
    def __init__(self, state_dir: Path):
        self.path = state_dir / JOURNAL_FILE

    def names(self) -> set[str]:
        try:
            return set(json.loads(self.path.read_text()))
        except (OSError, ValueError, TypeError):
            return set()

    def _save(self, names: set[str]) -> None:
        if names:
            write_atomic(self.path, json.dumps(sorted(names)), mode=0o600)
        else:
            self.path.unlink(missing_ok=True)

    @contextmanager
    def creating(self, database: str) -> Iterator[None]:
        """Name DATABASE while it is set up; forgotten once that succeeded."""
        names = self.names()
        if database not in names:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._save(names | {database})
        yield
        self._save(self.names() - {database})

    def mark(self, actual: "Actual") -> "Actual":
        """ACTUAL, with each unmarked database the journal names flagged `created_by_ecoctl`."""
        for name in self.names():
            state = actual.databases.get(name)
            if state is not None and not state.managed:
                state.created_by_ecoctl = True
        return actual


VERIFIED_FILE = "postgres-verified.json"


def wrong_passwords(passwords: dict[str, str | None], actual: "Actual", state_dir: Path | None = None) -> set[str]:
    """Roles whose stored verifier is not the password .env holds (checked only as a superuser).

    Checking a verifier costs one PBKDF2 (4096 rounds). `state_dir/postgres-verified.json` (0600)
    remembers the checks that passed (`support.verified`), so a plan with nothing changed skips the
    PBKDF2s; any change of verifier or password misses the cache.
    """
    from ecoctl.clients.postgres import verifier_matches
    if not actual.verifiers_known:
        return set()
    verified = Verified(state_dir / VERIFIED_FILE if state_dir else None)
    checks = []
    for role, password in passwords.items():
        if not password or role not in actual.roles:
            continue
        verifier = actual.roles[role].verifier or ""
        if not verified.known(role, password, verifier):
            checks.append((role, verifier, password))
    wrong = set()
    if checks:
        from concurrent.futures import ThreadPoolExecutor

        # pbkdf2 releases the GIL: two threads halve the time when many roles need checking
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = pool.map(lambda check: verifier_matches(check[1], check[2]), checks)
            for (role, verifier, password), ok in zip(checks, results):
                if ok:
                    verified.remember(role, password, verifier)
                else:
                    wrong.add(role)
    verified.save()
    return wrong
