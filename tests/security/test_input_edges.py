"""Values that passed the edge checks and broke later (issue 27, item 17): service names YAML reads
as null or a boolean (never convergeable: `could not write job 'null' cleanly`), a port written as
a float, two core components on one port, a user name in a redirect URI."""

import pytest

from tests.helpers import assert_refused, new_ecosystem_dir, run_ecoctl, snapshot


@pytest.fixture
def root(tmp_path):
    return new_ecosystem_dir(tmp_path)


@pytest.mark.parametrize("name", ["null", "true", "false", "yes", "no", "on", "off"])
def test_a_service_named_like_a_yaml_null_or_boolean_is_refused(root, name):
    before = snapshot(root)
    assert_refused(run_ecoctl("add-service", name, "--no-apply", cwd=root), 2, repr(name), "choose another name")
    assert snapshot(root) == before


def test_such_a_name_already_in_ecosystem_yaml_is_refused_at_load(root):
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text() + "  'null':\n    port: 8300\n")
    line = len(spec.read_text().splitlines()) - 1
    assert_refused(run_ecoctl("plan", cwd=root), 2, f"ecosystem.yaml:{line}:", "services.null")


@pytest.mark.parametrize("port", ["8080.0", " 8080", "+8080", "8_080", "0x1f90", "-1.0"])
def test_a_port_option_takes_digits_only(root, port):
    before = snapshot(root)
    result = run_ecoctl("add-service", "edge", "--port", port, "--no-apply", cwd=root)
    assert result.returncode == 2 and "--port" in result.stderr and "not an integer" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    assert snapshot(root) == before


def test_other_whole_number_options_take_digits_only(root):
    result = run_ecoctl("backup", "--keep", "3.0", cwd=root)
    assert result.returncode == 2 and "--keep" in result.stderr and "not an integer" in result.stderr, result.stderr


def test_a_plain_port_still_works(root):
    assert run_ecoctl("add-service", "edge", "--port", "8300", "--no-apply", cwd=root).returncode == 0
    assert "    port: 8300" in (root / "ecosystem.yaml").read_text()


@pytest.mark.parametrize("key, old, new", [
    ("core.redis.port", "    port: 6379", "    port: 5432"),
    ("core.monitoring.grafana_port", "grafana_port: 3001", "grafana_port: 9090"),
    ("core.authentik.port", "    port: 9000", "    port: 6379"),
])
def test_two_core_components_on_one_port_are_refused_at_load(root, key, old, new):
    spec = root / "ecosystem.yaml"
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new))
    line = text[:text.index(old)].count("\n") + 1
    assert_refused(run_ecoctl("plan", cwd=root), 2, f"ecosystem.yaml:{line}: {key}:", "taken by the core stack's")


@pytest.mark.parametrize("uri", ["http://evil.com@127.0.0.1/callback", "https://user:pw@app.example/cb",
                                 "http://@127.0.0.1/cb"])
def test_a_redirect_uri_with_a_user_name_is_refused(root, uri):
    before = snapshot(root)
    assert_refused(run_ecoctl("add-service", "edge", "--redirect-uri", uri, "--no-apply", cwd=root), 2,
                   "--redirect-uri", "user name")
    assert snapshot(root) == before
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text() + f"  edge:\n    port: 8300\n    redirect_uris: ['{uri}']\n")
    assert_refused(run_ecoctl("plan", cwd=root), 2, "redirect_uris", "user name")
