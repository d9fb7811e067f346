import pytest

from ecoctl.errors import UsageError
from ecoctl.model import EcosystemFile
from ecoctl.commands.init import init_ecosystem
from tests.helpers import run_ecoctl


@pytest.fixture
def root(tmp_path):
    init_ecosystem(tmp_path / "eco", runtime="local")
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
    result = run_ecoctl("init", str(root), "--force", "--runtime", "docker")
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
