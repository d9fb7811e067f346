"""Imports ecoctl never needs, kept out of its process.

`import httpx` imports httpx's own command line (`httpx._main`: click, pygments and most of rich,
~50-100 ms) whenever those happen to be installed, as they are beside Typer. ecoctl only uses
httpx's client, so before the first `import httpx` the command line module is replaced by a stub
whose `main` says where the real one is; httpx's package then loads without it.
"""

from __future__ import annotations

import sys
import types


def skip_httpx_cli() -> None:
    """Keep `httpx._main` (the `httpx` command) out of this process; a no-op once httpx is loaded."""
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    stub = types.ModuleType("httpx._main", "Stand-in for httpx's command line, not loaded inside ecoctl.")

    def main() -> None:
        raise SystemExit("the httpx command line is not loaded inside ecoctl: run `httpx` itself")

    stub.main = main
    sys.modules["httpx._main"] = stub
