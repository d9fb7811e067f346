"""The command line: parses arguments, calls a command, prints. Nothing else lives here.

The commands live in `ecosystem` (init, plan, apply, up, down, status, logs, token), `services`
(add/remove/list, templates, upgrade, scale), `operations` (env, restart, doctor, secrets) and
`backups` (backup, restore).
"""

from __future__ import annotations

import sys

from ecoctl.cli.app import app

# the command modules register their commands on `app`, in this order
from ecoctl.cli import ecosystem, services  # noqa: F401
from ecoctl.cli import operations  # noqa: F401
from ecoctl.cli import backups  # noqa: F401


def main() -> None:
    """The `ecoctl` program: the process ends when this returns."""
    import gc

    try:
        _run()
    finally:
        # nothing is left to collect in a process about to end: without this, the interpreter's
        # shutdown walks every object of ~550 modules (~30 ms); atexit handlers still run
        gc.freeze()


def _run() -> None:
    from ecoctl.errors import EcoctlError
    from ecoctl.support.lean_imports import skip_httpx_cli

    skip_httpx_cli()  # httpx's own command line (click, pygments, rich): ~100 ms ecoctl never uses
    try:
        app(prog_name="ecoctl")  # also names the completion variable: _ECOCTL_COMPLETE
    except EcoctlError as exc:
        from ecoctl import ui

        ui.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as exc:  # a bug, or a failure no provider translated: still one line
        import os

        if os.environ.get("ECOCTL_DEBUG"):
            raise
        from ecoctl import ui

        text = " ".join(str(exc)[:2000].split())
        text = text if len(text) <= 200 else text[:197] + "..."  # never a flood of a bad value
        ui.error(f"unexpected {type(exc).__name__}: {text} (run again with ECOCTL_DEBUG=1 for the "
                 "traceback, and please report it)")
        sys.exit(1)
