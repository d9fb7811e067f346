"""Text from a template never drives the terminal (issue 27, item 10): raw ESC/OSC sequences in a
team template's description reached the terminal through `ecoctl templates list` (an OSC can set
the window title, write to the clipboard, or hide what follows)."""

import json

from ecoctl.commands.init import init_ecosystem
from tests.helpers import assert_refused, run_ecoctl

HOSTILE = "\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J\x1b[1A\rFake line\x9b31m"


def team_template(folder, description: str, summary: str = "first") -> None:
    (folder / "files").mkdir(parents=True)
    (folder / "template.yaml").write_text(json.dumps({
        "name": "shady", "description": description, "default_port": 8400, "version": 1,
        "changelog": [{"version": 1, "summary": summary}]}))


def test_control_sequences_in_a_description_are_shown_escaped(tmp_path):
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    team_template(root / "team" / "shady", "A template " + HOSTILE, summary="v1 " + HOSTILE)
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text() + "templates_dir: team\n")
    result = run_ecoctl("templates", "list", cwd=root)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("shady"))
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\r" not in result.stdout
    assert "\x9b" not in result.stdout
    assert "A template \\x1b]52;c;" in line and "Fake line" in line
    listed = json.loads(run_ecoctl("templates", "list", "--json", cwd=root).stdout)
    shady = next(t for t in listed["templates"] if t["name"] == "shady")
    assert "\x1b" not in shady["description"] and "\x1b" not in shady["changelog"][0]["summary"]


def test_a_template_name_with_control_characters_is_refused(tmp_path):
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    folder = root / "team" / "shady"
    team_template(folder, "fine")
    (folder / "template.yaml").write_text((folder / "template.yaml").read_text().replace(
        '"shady"', '"sha\\u001b]0;x\\u0007dy"'))
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text() + "templates_dir: team\n")
    line = assert_refused(run_ecoctl("templates", "list", cwd=root), 2, "template.yaml", "control characters")
    assert "\x1b" not in line


def test_a_template_reference_with_control_characters_is_refused(tmp_path):
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    spec = root / "ecosystem.yaml"
    spec.write_text(spec.read_text() + '  edge:\n    port: 8300\n    template: "py\\e]0;x\\athon"\n')
    line = assert_refused(run_ecoctl("templates", "list", cwd=root), 2, "services.edge.template")
    assert "\x1b" not in line
