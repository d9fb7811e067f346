"""The ecosystem's certificate authority, in `.ecoctl/ca/`: a root and the leaf certificates it signs.

`ensure` (run by `apply` and `up`) creates the root once (an EC P-256 key, 0600, never printed;
ten years) and one leaf per TLS endpoint of the stack (`LEAVES`: the edge, PostgreSQL), each for
the names and addresses clients use (127.0.0.1, localhost, its container names, `core.address`,
`core.edge.domain`). A leaf is issued again when it is missing, has fewer than `RENEW_DAYS` left,
names other hosts than wanted, or was not signed by the current root. The root is issued again
with its own key and subject when fewer than `RENEW_DAYS` are left, so chains keep verifying
under the old root certificate too. `ecoctl ca export` prints `root.pem`; `doctor` warns about
anything that expires within `RENEW_DAYS`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ecoctl.support.atomic import write_atomic

if TYPE_CHECKING:
    from ecoctl.model import Ecosystem

ROOT_DAYS = 3650
LEAF_DAYS = 397
RENEW_DAYS = 30
"""Renewed on `up`/`apply` with fewer days than this left; `doctor` warns from here on."""
LEAVES = ("edge", "postgres")


@dataclass(frozen=True)
class Leaf:
    name: str
    cert: Path
    key: Path


@dataclass(frozen=True)
class Expiry:
    name: str
    not_after: dt.datetime

    def days_left(self, now: dt.datetime | None = None) -> float:
        now = now or dt.datetime.now(dt.timezone.utc)
        return (self.not_after - now).total_seconds() / 86400


def ca_dir(state_dir: Path) -> Path:
    return state_dir / "ca"


def root_cert_path(state_dir: Path) -> Path:
    return ca_dir(state_dir) / "root.pem"


def root_key_path(state_dir: Path) -> Path:
    return ca_dir(state_dir) / "root-key.pem"


def leaf(state_dir: Path, name: str) -> Leaf:
    folder = ca_dir(state_dir) / "leaves"
    return Leaf(name, folder / f"{name}.pem", folder / f"{name}-key.pem")


def leaf_hosts(ecosystem: "Ecosystem", name: str) -> list[str]:
    """The names and addresses leaf NAME is valid for: loopback, its compose service name and
    container name, the address other hosts reach this one at, the edge's public domain."""
    hosts = ["127.0.0.1", "::1", "localhost", name, f"{ecosystem.name}-{name}-1", f"{ecosystem.name}_{name}"]
    if ecosystem.core.address:
        hosts.append(ecosystem.core.address)
    if name == "edge" and ecosystem.core.edge.domain:
        hosts.append(ecosystem.core.edge.domain)
    return list(dict.fromkeys(hosts))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _load_cert(path: Path):
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _load_key(path: Path):
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _expiring(cert) -> bool:
    return cert.not_valid_after_utc - _now() < dt.timedelta(days=RENEW_DAYS)


def _builder(subject, issuer, public_key, days: int):
    from cryptography import x509

    now = _now()
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days)))


def ensure_root(state_dir: Path, ecosystem_name: str) -> bool:
    """The root certificate and key, created (or re-issued near expiry); True when written."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    folder = ca_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key, cert = _load_key(root_key_path(state_dir)), _load_cert(root_cert_path(state_dir))
    if key is not None and cert is not None and cert.public_key() == key.public_key() and not _expiring(cert):
        return False
    if key is None:
        key = _new_key()
        write_atomic(root_key_path(state_dir), _key_pem(key), mode=0o600)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ecoctl"),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"ecoctl {ecosystem_name} root CA")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    built = (_builder(subject, subject, key.public_key(), ROOT_DAYS)
             .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                          content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False,
                                          encipher_only=False, decipher_only=False), critical=True)
             .add_extension(ski, critical=False)
             .sign(key, hashes.SHA256()))
    from cryptography.hazmat.primitives import serialization

    write_atomic(root_cert_path(state_dir), built.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return True


def _san_hosts(cert) -> set[str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(value) for value in san.get_values_for_type(x509.DNSName)} | {
        str(value) for value in san.get_values_for_type(x509.IPAddress)}


def _normalised(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def _signed_by(cert, root) -> bool:
    try:
        cert.verify_directly_issued_by(root)
        return True
    except Exception:  # InvalidSignature, or not the same key type
        return False


def ensure_leaf(state_dir: Path, name: str, hosts: list[str]) -> bool:
    """Leaf NAME for HOSTS, signed by the root (which must exist); True when (re)issued."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    wanted = {_normalised(host) for host in hosts}
    paths = leaf(state_dir, name)
    root = _load_cert(root_cert_path(state_dir))
    root_key = _load_key(root_key_path(state_dir))
    cert, key = _load_cert(paths.cert), _load_key(paths.key)
    if (cert is not None and key is not None and cert.public_key() == key.public_key() and not _expiring(cert)
            and _san_hosts(cert) == wanted and _signed_by(cert, root)):
        return False
    paths.cert.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = _new_key()
    names: list[x509.GeneralName] = []
    for host in sorted(wanted):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ecoctl"),
                         x509.NameAttribute(NameOID.COMMON_NAME, name)])
    built = (_builder(subject, root.subject, key.public_key(), LEAF_DAYS)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.SubjectAlternativeName(names), critical=False)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                            critical=False)
             .sign(root_key, hashes.SHA256()))
    write_atomic(paths.key, _key_pem(key), mode=0o600)
    write_atomic(paths.cert, built.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return True


def ensure(state_dir: Path, ecosystem: "Ecosystem") -> list[str]:
    """The root and every leaf, current; the names of those (re)issued."""
    issued = ["root"] if ensure_root(state_dir, ecosystem.name) else []
    issued += [name for name in LEAVES if ensure_leaf(state_dir, name, leaf_hosts(ecosystem, name))]
    return issued


def expiries(state_dir: Path) -> list[Expiry]:
    """When the root and each leaf there is expire (missing ones left out)."""
    found = []
    for name, path in [("root", root_cert_path(state_dir)),
                       *((name, leaf(state_dir, name).cert) for name in LEAVES)]:
        cert = _load_cert(path)
        if cert is not None:
            found.append(Expiry(name, cert.not_valid_after_utc))
    return found


def root_pem(state_dir: Path) -> str | None:
    path = root_cert_path(state_dir)
    return path.read_text() if _load_cert(path) is not None else None
