"""Checks of a secret against its slow salted hash (PBKDF2), remembered between runs.

Checking a stored hash or SCRAM verifier against the secret .env holds costs one PBKDF2 by design,
so a command that checks every service's would pay one per service on every run. A `Verified` file
(0600, in the ecosystem's state folder beside `.env`, which holds the secrets themselves) remembers,
per name, an HMAC-SHA256 of the stored hash keyed by the secret that matched it: the same secret and
the same hash skip the PBKDF2; any change of either misses, and the slow check runs again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from ecoctl.support.atomic import write_atomic


def token(secret: str, stored: str) -> str:
    return hmac.new(secret.encode(), stored.encode(), hashlib.sha256).hexdigest()


class Verified:
    """The checks that passed, read from PATH (None: remember nothing); `save` writes this run's."""

    def __init__(self, path: Path | None):
        self.path = path
        try:
            before = json.loads(path.read_text()) if path else {}
        except (OSError, ValueError):
            before = {}
        self.before: dict[str, str] = before if isinstance(before, dict) else {}
        self.now: dict[str, str] = {}

    def known(self, name: str, secret: str, stored: str) -> bool:
        """Whether STORED was found to match SECRET before (then it is remembered again)."""
        wanted = token(secret, stored)
        if hmac.compare_digest(str(self.before.get(name, "")), wanted):
            self.now[name] = wanted
            return True
        return False

    def remember(self, name: str, secret: str, stored: str) -> None:
        """STORED matches SECRET (checked the slow way, or just made from it)."""
        self.now[name] = token(secret, stored)

    def save(self) -> None:
        """This run's checks replace the file's (names not checked this time are forgotten)."""
        if self.path is None or self.now == self.before:
            return
        try:
            write_atomic(self.path, json.dumps(self.now, sort_keys=True), mode=0o600)
        except OSError:
            pass  # only a cache: the next run checks again
