"""Which port a service or core piece may take in an ecosystem (a `model.Ecosystem`): the clash
rules, checked when ecosystem.yaml is loaded (`first_clash`) and by add-service (`port_clash`,
`first_free_port`)."""

from __future__ import annotations

from ecoctl.errors import UsageError


def port_clash(ecosystem: "Ecosystem", name: str, port: int, pattern: str, host: str | None,
               among: dict[str, "ServiceSpec"] | None = None) -> str | None:
    """Why service NAME may not listen on PORT (None: it may): another service (of `among`, default
    all) on the same host has it, or the core stack does (a service of pattern `external` runs on
    HOST, not here)."""
    where = host if pattern == "external" else None
    core = ecosystem.core_ports
    if where is None and port in core:
        return f"port {port} is taken by the core stack's {core[port]}"
    for other, spec in (ecosystem.services if among is None else among).items():
        if other != name and spec.port == port and (spec.host if spec.pattern == "external" else None) == where:
            return f"port {port} is taken by service {other!r}"
    return None


def first_free_port(ecosystem: "Ecosystem", name: str, start: int, pattern: str, host: str | None) -> int:
    """The first port from START no other service nor the core stack takes and, for a service
    that runs here, nothing on this host listens on."""
    from ecoctl.support.ports import free_on_host

    for port in range(start, 65536):
        if not port_clash(ecosystem, name, port, pattern, host) and (pattern == "external" or free_on_host(port)):
            return port
    raise UsageError(f"no port from {start} to 65535 is free for {name!r}: pass --port")


def first_clash(ecosystem: "Ecosystem") -> tuple[tuple[str, ...], str] | None:
    """The key of the first port another core piece, another service on its host or the core stack
    takes, and why (what `up` would otherwise find out after stopping the working service)."""
    pieces: dict[int, str] = {}
    for piece, (key, port) in ecosystem.core_port_keys.items():
        if port in pieces:
            return key, f"port {port} is taken by the core stack's {pieces[port]}: choose another"
        pieces[port] = piece
    seen: dict[str, "ServiceSpec"] = {}
    for name, spec in ecosystem.services.items():
        clash = port_clash(ecosystem, name, spec.port, spec.pattern, spec.host, among=seen)
        if clash:
            return ("services", name, "port"), f"{clash}: choose another"
        seen = {**seen, name: spec}
    return None
