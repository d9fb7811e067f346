"""The firewall rules pattern 3 needs (the seed: "allow 5432 from the loyalty server's IP, deny
from everywhere else"), as nftables or ufw commands, printed for a person to load; ecoctl never
changes a firewall itself.

For each external service's host: on this host (`core.address`), PostgreSQL and the edge accept
that host only (and loopback), and are closed to everyone else; on the service's host, its port
(where `/metrics` is) accepts Prometheus, which runs here, and nothing else. Other ports are left
as they are (an ssh session keeps working).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ecoctl.errors import UsageError

if TYPE_CHECKING:
    from ecoctl.model import Ecosystem

Format = Literal["nftables", "ufw"]
FORMATS = ("nftables", "ufw")


@dataclass(frozen=True)
class Rules:
    """One host's rules: PORTS accept each of SOURCES (name -> address), and no one else."""

    where: str
    host: str
    ports: tuple[int, ...]
    sources: dict[str, str]
    table: str


def _family(address: str) -> str:
    try:
        return "ip6" if ipaddress.ip_address(address).version == 6 else "ip"
    except ValueError:
        return "ip"  # a host name: nft resolves it when the rules are loaded


def rule_sets(ecosystem: "Ecosystem", service: str | None = None) -> list[Rules]:
    """This host's rules for the external services (or SERVICE alone), then each service host's."""
    external = {name: spec for name, spec in ecosystem.services.items() if spec.pattern == "external"}
    if service is not None:
        if service not in ecosystem.services:
            raise UsageError(f"no service {service!r} in ecosystem.yaml: run `ecoctl list` to see them")
        if service not in external:
            raise UsageError(f"{service} is not external (pattern {ecosystem.services[service].pattern}): "
                             "only pattern-3 services need firewall rules")
        external = {service: external[service]}
    if not external:
        raise UsageError("no external (pattern 3) service in ecosystem.yaml: nothing to open "
                         "(`ecoctl add-service NAME --pattern external --host ADDRESS`)")
    here = ecosystem.core.address
    if not here:
        raise UsageError("core.address is not set: set it in ecosystem.yaml to the address the external "
                         "services' hosts reach this one at")
    sources = {name: spec.host for name, spec in external.items() if spec.host}
    core, edge = ecosystem.core, ecosystem.core.edge
    ports = [] if core.postgres.external else [core.postgres.port]
    if ecosystem.edge_on and not edge.domain:  # a public domain is open to everyone
        ports += [edge.port, edge.auth_port, edge.http_port]
    slug = ecosystem.name.replace("-", "_")
    found = [Rules("this host", here, tuple(ports), sources, f"ecoctl_{slug}")] if ports else []
    for name, spec in external.items():
        found.append(Rules(f"{name}'s host", spec.host or "<its address>", (spec.port,),
                           {"prometheus": here}, f"ecoctl_{slug}_{name.replace('-', '_')}"))
    return found


def render(ecosystem: "Ecosystem", fmt: str = "nftables", service: str | None = None) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"--format must be nftables or ufw, not {fmt!r}")
    sets = rule_sets(ecosystem, service)
    lines = [f"# ecoctl: the firewall rules of ecosystem {ecosystem.name} for its external (pattern 3) services.",
             "# Load each part on the host it names; other ports are left as they are."]
    for rules in sets:
        ports = ", ".join(str(port) for port in rules.ports)
        sources = ", ".join(f"{name} {address}" for name, address in rules.sources.items())
        lines += ["", f"# on {rules.where} ({rules.host}): {ports}/tcp from {sources} only"]
        lines += _nftables(rules) if fmt == "nftables" else _ufw(rules)
    return "\n".join(lines) + "\n"


def _nftables(rules: Rules) -> list[str]:
    ports = ", ".join(str(port) for port in rules.ports)
    match = f"{{ {ports} }}" if len(rules.ports) > 1 else ports
    lines = [f"table inet {rules.table}", f"delete table inet {rules.table}", f"table inet {rules.table} {{",
             "\tchain input {", "\t\ttype filter hook input priority filter; policy accept;",
             f"\t\tiifname \"lo\" tcp dport {match} accept"]
    for name, address in rules.sources.items():
        lines.append(f"\t\t{_family(address)} saddr {address} tcp dport {match} accept comment \"{name}\"")
    lines += [f"\t\ttcp dport {match} drop", "\t}", "}"]
    return lines


def _ufw(rules: Rules) -> list[str]:
    lines = []
    for name, address in rules.sources.items():
        lines += [f"ufw allow from {address} to any port {port} proto tcp comment 'ecoctl: {name}'"
                  for port in rules.ports]
    lines += [f"ufw deny {port}/tcp" for port in rules.ports]
    return lines
