"""`ecoctl firewall`: the pattern-3 rules as nftables (checked by `nft -c -f`) and as ufw commands,
and what add-service --pattern external shows."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ecoctl import firewall
from ecoctl.errors import UsageError
from ecoctl.workspace import Workspace
from tests.helpers import run_ecoctl


def make(tmp_path, address: str | None = "10.0.1.50") -> Workspace:
    from ecoctl.commands.init import init_ecosystem

    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local")

    def change(doc):
        doc["name"] = "demo"
        if address:
            doc["core"]["address"] = address
        doc["services"]["loyalty"] = {"port": 8101, "pattern": "external", "host": "10.0.2.50"}
        doc["services"]["rewards"] = {"port": 8102, "pattern": "external", "host": "fd00::12"}
        doc["services"]["audit"] = {"port": 8103}

    Workspace(root).ecosystem_file.update(change)
    return Workspace(root)


def test_nftables_rules_open_postgres_and_the_edge_to_each_external_host_only(tmp_path):
    text = firewall.render(make(tmp_path).ecosystem, "nftables")
    core = text.split("table inet ecoctl_demo {", 1)[1].split("\n}", 1)[0]
    assert 'ip saddr 10.0.2.50 tcp dport { 5432, 8443, 9443, 8480 } accept comment "loyalty"' in core
    assert 'ip6 saddr fd00::12 tcp dport { 5432, 8443, 9443, 8480 } accept comment "rewards"' in core
    assert core.rstrip().removesuffix("}").rstrip().endswith("tcp dport { 5432, 8443, 9443, 8480 } drop")
    assert "audit" not in text  # not external: nothing to open
    loyalty = text.split("table inet ecoctl_demo_loyalty {", 1)[1].split("\n}", 1)[0]
    assert 'ip saddr 10.0.1.50 tcp dport 8101 accept comment "prometheus"' in loyalty
    assert loyalty.rstrip().removesuffix("}").rstrip().endswith("tcp dport 8101 drop")


def nft_check(path) -> list[str]:
    """`nft -c -f PATH`: even a check reads the kernel's ruleset over netlink, which needs
    CAP_NET_ADMIN: root has it (CI), anyone else gets it in a network namespace of their own."""
    argv = ["nft", "-c", "-f", str(path)]
    return argv if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--net", *argv]


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed (tests/run.sh installs nftables)")
def test_the_nftables_output_passes_nft_check(tmp_path):
    path = tmp_path / "rules.nft"
    path.write_text(firewall.render(make(tmp_path).ecosystem, "nftables"))
    checked = subprocess.run(nft_check(path), capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    broken = tmp_path / "broken.nft"
    broken.write_text(path.read_text().replace("tcp dport", "tcp dprt", 1))
    refused = subprocess.run(nft_check(broken), capture_output=True, text=True)
    assert refused.returncode != 0 and "Error: syntax error" in refused.stderr, refused.stderr


def test_ufw_commands_allow_first_then_deny(tmp_path):
    lines = firewall.render(make(tmp_path).ecosystem, "ufw", "loyalty").splitlines()
    commands = [line for line in lines if line.startswith("ufw ")]
    assert commands[:4] == [f"ufw allow from 10.0.2.50 to any port {port} proto tcp comment 'ecoctl: loyalty'"
                            for port in (5432, 8443, 9443, 8480)]
    assert commands[4:8] == [f"ufw deny {port}/tcp" for port in (5432, 8443, 9443, 8480)]
    assert commands[8:] == ["ufw allow from 10.0.1.50 to any port 8101 proto tcp comment 'ecoctl: prometheus'",
                            "ufw deny 8101/tcp"]
    assert "rewards" not in "\n".join(commands)


def test_what_firewall_refuses(tmp_path):
    workspace = make(tmp_path)
    with pytest.raises(UsageError, match="audit is not external"):
        firewall.render(workspace.ecosystem, "ufw", "audit")
    with pytest.raises(UsageError, match="--format must be nftables or ufw"):
        firewall.render(workspace.ecosystem, "iptables")
    no_address = make(tmp_path / "second", address=None)
    with pytest.raises(UsageError, match="core.address is not set"):
        firewall.render(no_address.ecosystem)
    cli = run_ecoctl("firewall", "nobody", cwd=workspace.root)
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1 and "no service 'nobody'" in cli.stderr
    printed = run_ecoctl("firewall", "--format", "ufw", "loyalty", cwd=workspace.root)
    assert printed.returncode == 0 and printed.stdout == firewall.render(workspace.ecosystem, "ufw", "loyalty")


def test_the_external_contract_verifies_postgres_against_the_ca(tmp_path):
    from ecoctl import contract

    variables = contract.environment(make(tmp_path), "loyalty", "external")
    assert variables["DATABASE_HOST"] == "10.0.1.50"
    assert variables["DATABASE_SSLMODE"] == "verify-full"
    assert variables["DATABASE_SSLROOTCERT"] == contract.CA_FILE_EXTERNAL
    assert variables["DATABASE_URL"].endswith(f"?sslmode=verify-full&sslrootcert={contract.CA_FILE_EXTERNAL}")
    assert variables["OIDC_ISSUER"] == "https://10.0.1.50:9443/application/o/eco-loyalty/"
    local = contract.environment(make(tmp_path / "second"), "audit", "local")
    assert local["DATABASE_HOST"] == "127.0.0.1" and "DATABASE_SSLMODE" not in local  # same host: loopback


def test_an_external_web_app_gets_nothing_of_postgres(tmp_path):
    from ecoctl import contract

    workspace = make(tmp_path)
    workspace.ecosystem_file.update(lambda doc: doc["services"].__setitem__(
        "shop-web", {"port": 3105, "client": "public", "calls": ["audit"], "pattern": "external", "host": "10.0.3.7"}))
    variables = contract.environment(Workspace(workspace.root), "shop-web", "external")
    assert not [key for key in variables if key.startswith("DATABASE_")], variables
    assert variables["API_URLS"] and variables["OIDC_ISSUER"].startswith("https://10.0.1.50:")


def test_in_containers_postgres_is_published_on_the_address_too(tmp_path):
    from ecoctl import compose_core, components
    from ecoctl.commands.init import init_ecosystem

    root = tmp_path / "docker"
    init_ecosystem(root, runtime="docker")
    Workspace(root).ecosystem_file.update(lambda doc: doc["core"].__setitem__("address", "10.0.1.50"))
    entry = compose_core.entry(Workspace(root).ecosystem, components.POSTGRES)
    assert entry["ports"] == ["127.0.0.1:5432:5432", "10.0.1.50:5432:5432"]
    assert "ssl=on" in entry["command"] and entry["entrypoint"][0] == "sh"
    assert compose_core.entry(Workspace(root).ecosystem, components.REDIS)["ports"] == ["127.0.0.1:6379:6379"]
