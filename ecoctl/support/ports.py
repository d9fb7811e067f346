"""Whether a TCP port is free on this host."""

from __future__ import annotations


def free_on_host(port: int) -> bool:
    """Nothing listens on PORT on this host's loopback (where the stack publishes its ports)."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
