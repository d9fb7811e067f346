"""YAML nested tens of thousands of levels deep (issue 27, items 11 and 7): the C composer recurses
once a level without Python's recursion check, so such a file crashed every command (rc 139).
The depth is refused before any composer sees it: one line naming the file, exit 2."""

import pytest

from ecoctl.commands.init import init_ecosystem
from ecoctl.support.yaml import fast_load, parse_yaml
from tests.helpers import assert_refused, run_ecoctl

DEPTH = 30_000


def nested(kind: str, depth: int = DEPTH) -> str:
    return {"flow": "[" * depth + "]" * depth,
            "mapping": "{a: " * depth + "}" * depth,
            "block": "\n" + "- " * depth + "a"}[kind]


@pytest.mark.parametrize("kind", ["flow", "mapping", "block"])
def test_a_deep_ecosystem_yaml_is_refused_by_every_command(tmp_path, kind):
    (tmp_path / "ecosystem.yaml").write_text(f"name: eco\nruntime: local\nx: {nested(kind)}\n")
    for command in (["plan"], ["status"], ["templates", "list"]):
        line = assert_refused(run_ecoctl(*command, cwd=tmp_path, timeout=120), 2, "ecosystem.yaml")
        assert "nested more than" in line


def test_a_deep_template_record_is_refused_by_plan_and_upgrade(tmp_path):
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    record = root / "services" / "portfolio" / ".ecoctl-template.yml"
    record.write_text(record.read_text().replace("  port: 8000", "  port: " + nested("flow", 40_000)))
    for command in (["plan"], ["upgrade", "portfolio", "--dry-run"]):
        line = assert_refused(run_ecoctl(*command, cwd=root, timeout=120), 2, ".ecoctl-template.yml")
        assert "nested more than" in line


def test_a_deep_template_manifest_is_refused(tmp_path):
    template = tmp_path / "deep"
    (template / "files").mkdir(parents=True)
    (template / "template.yaml").write_text(f"name: deep\nvariables: {nested('flow')}\n")
    (tmp_path / "eco").mkdir()
    result = run_ecoctl("init", str(tmp_path / "eco" / "x"), "--runtime", "local", "--without", "web")
    assert result.returncode == 0, result.stderr
    result = run_ecoctl("add-service", "deep", "--template", str(template), "--no-apply", cwd=tmp_path / "eco" / "x")
    assert_refused(result, 2, "template.yaml", "nested more than")


def test_honest_nesting_still_loads():
    from ecoctl.support.yaml import MAX_DEPTH

    text = "a: " + nested("flow", MAX_DEPTH - 1) + "\nb: [1, 2]\nc:\n" + "- " * 5 + "x\n"
    assert fast_load("f.yaml", text)["b"] == [1, 2]
    assert parse_yaml("f.yaml", text)["b"] == [1, 2]
    many = "services:\n" + "".join(f"  s{i}:\n    ports: ['{i}:{i}']\n    env: {{A: '-'}}\n" for i in range(2000))
    assert len(fast_load("compose.yaml", many)["services"]) == 2000
