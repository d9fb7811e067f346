"""`python -m ecoctl.issuer CONFIG`: serve the development sign-in on 127.0.0.1 (in a container: on its
interfaces) until stopped; on SIGHUP it reads CONFIG's clients and users again, keeping every
session and refresh token."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

LOOPBACK = ("127.0.0.1", "::1", "localhost")
IN_CONTAINER = "0.0.0.0"
CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")
"""Allowed in a container only (`core.signin.in_containers`): its own network namespace, whose port
compose publishes on the host's 127.0.0.1."""


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m ecoctl.issuer CONFIG.json", file=sys.stderr)
        return 2
    from werkzeug.serving import make_server

    from ecoctl.issuer.server import create_app

    config = Path(argv[0])
    settings = json.loads(config.read_text())
    host = settings.get("host", "127.0.0.1")
    in_container = any(Path(marker).exists() for marker in CONTAINER_MARKERS)
    if host not in LOOPBACK and not (host == IN_CONTAINER and in_container):
        print(f"ERROR: the development sign-in listens on loopback only, not {host}", file=sys.stderr)
        return 2
    server = make_server(host, int(settings["port"]), create_app(config), threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    store = server.app.extensions["ecoctl.issuer"]
    # reloaded in a thread of its own: a second SIGHUP during a reload waits for the lock, not the handler
    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(
        target=lambda: print(store.reload(config), flush=True), daemon=True).start())
    print(f"development sign-in on {settings['base_url']} ({len(settings['clients'])} clients, "
          f"{len(settings['users'])} users)", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
