"""The ecosystem CA with no server: the root (0600 key), the leaves and their names, renewal before
expiry (a root re-issued with its own key keeps old chains valid), `ca export`, doctor's warning."""

from __future__ import annotations

import datetime as dt
import stat

import pytest
from cryptography import x509

from ecoctl import certs
from ecoctl.workspace import Workspace
from tests.helpers import run_ecoctl


@pytest.fixture
def workspace(tmp_path):
    from ecoctl.commands.init import init_ecosystem

    init_ecosystem(tmp_path / "eco", runtime="local")
    workspace = Workspace(tmp_path / "eco")
    workspace.ecosystem_file.update(lambda doc: doc["core"].__setitem__("address", "10.0.1.50"))
    assert certs.root_pem(workspace.state_dir) is not None  # init converged the files, and made the CA
    import shutil

    shutil.rmtree(certs.ca_dir(workspace.state_dir))  # each test starts from none
    return Workspace(tmp_path / "eco")


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(cert) -> set[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(value) for value in names.get_values_for_type(x509.DNSName)} | {
        str(value) for value in names.get_values_for_type(x509.IPAddress)}


def test_the_ca_and_its_leaves_are_made_once(workspace):
    state = workspace.state_dir
    assert certs.ensure(state, workspace.ecosystem) == ["root", "edge", "postgres"]
    assert stat.S_IMODE(certs.root_key_path(state).stat().st_mode) == 0o600
    assert stat.S_IMODE(certs.ca_dir(state).stat().st_mode) == 0o700
    root = load(certs.root_cert_path(state))
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    for name in certs.LEAVES:
        paths = certs.leaf(state, name)
        assert stat.S_IMODE(paths.key.stat().st_mode) == 0o600
        cert = load(paths.cert)
        cert.verify_directly_issued_by(root)
        assert {"127.0.0.1", "::1", "localhost", name, f"{workspace.ecosystem.name}-{name}-1",
                "10.0.1.50"} <= sans(cert)
    assert certs.ensure(state, workspace.ecosystem) == []  # nothing to renew


def test_a_leaf_is_issued_again_for_new_names_and_near_expiry(workspace, monkeypatch):
    state = workspace.state_dir
    certs.ensure(state, workspace.ecosystem)
    before = load(certs.leaf(state, "postgres").cert)
    workspace.ecosystem_file.update(lambda doc: doc["core"].__setitem__("address", "10.0.1.51"))
    moved = Workspace(workspace.root).ecosystem
    assert certs.ensure(state, moved) == ["edge", "postgres"]
    assert "10.0.1.51" in sans(load(certs.leaf(state, "postgres").cert))
    certs.leaf(state, "edge").cert.unlink()
    monkeypatch.setattr(certs, "LEAF_DAYS", certs.RENEW_DAYS - 1)  # issued already expiring
    assert certs.ensure_leaf(state, "edge", certs.leaf_hosts(moved, "edge"))
    before = load(certs.leaf(state, "edge").cert)
    monkeypatch.setattr(certs, "LEAF_DAYS", 397)
    assert certs.ensure(state, moved) == ["edge"]
    assert load(certs.leaf(state, "edge").cert).not_valid_after_utc > before.not_valid_after_utc


def test_a_root_near_expiry_is_issued_again_with_its_own_key(workspace, monkeypatch):
    state = workspace.state_dir
    monkeypatch.setattr(certs, "ROOT_DAYS", 10)
    certs.ensure(state, workspace.ecosystem)
    old_root, key = load(certs.root_cert_path(state)), certs.root_key_path(state).read_bytes()
    monkeypatch.setattr(certs, "ROOT_DAYS", 3650)
    assert certs.ensure(state, workspace.ecosystem)[0] == "root"
    assert certs.root_key_path(state).read_bytes() == key
    new_root = load(certs.root_cert_path(state))
    assert new_root.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) > dt.timedelta(days=3000)
    for name in certs.LEAVES:  # chains verify under the root a client trusted before, too
        load(certs.leaf(state, name).cert).verify_directly_issued_by(old_root)
        load(certs.leaf(state, name).cert).verify_directly_issued_by(new_root)


def test_doctor_warns_before_an_expiry(workspace, monkeypatch):
    from ecoctl.commands.doctor import Doctor

    doctor = Doctor(workspace)
    doctor.check_certificates()
    assert (doctor.checks[-1].status, doctor.checks[-1].name) == ("skip", "certificates")
    monkeypatch.setattr(certs, "LEAF_DAYS", 20)
    certs.ensure(workspace.state_dir, workspace.ecosystem)
    doctor.check_certificates()
    check = doctor.checks[-1]
    assert check.status == "warn" and "edge expires in 20 days" in check.verdict
    assert "ecoctl apply" in check.fix
    monkeypatch.setattr(certs, "LEAF_DAYS", 397)
    certs.ensure(workspace.state_dir, workspace.ecosystem)
    doctor.check_certificates()
    assert doctor.checks[-1].status == "ok"


def test_ca_export_prints_the_root_and_never_the_key(workspace):
    exported = run_ecoctl("ca", "export", cwd=workspace.root)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == certs.root_cert_path(workspace.state_dir).read_text()
    assert "PRIVATE KEY" not in exported.stdout
    load(certs.root_cert_path(workspace.state_dir))
